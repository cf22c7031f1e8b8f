"""Sessions kept in the audit store so that every worker and replica shares them, each under the SHA-256 of what
identifies it (who reads the database cannot make one); ended ones are deleted, expired ones purged as new ones
open.

- The dashboard's: the browser holds a random token; the store keeps the user, the role, the user's API key at
  sign-in and the expiry. Signing out ends it.
- The pathway timeline's: the sealed cookie holds the EHR's token and names its launch; the store keeps the
  launch's expiry and the end of its idle time. The page's "End session", an idle spell or the expiry ends it,
  and a copy of the cookie then opens nothing."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from . import tables


@dataclass(frozen=True)
class StoredSession:
    user_name: str
    role: str
    key_sha256: str | None
    created_at: float
    expires_at: float


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SqlSessions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, token: str, session: StoredSession) -> None:
        table = tables.dashboard_sessions
        with self.engine.begin() as connection:
            connection.execute(delete(table).where(table.c.expires_at < session.created_at))
            connection.execute(insert(table).values(token_sha256=token_hash(token), user_name=session.user_name,
                                                    role=session.role, key_sha256=session.key_sha256,
                                                    created_at=session.created_at, expires_at=session.expires_at))

    def find(self, token: str) -> StoredSession | None:
        table = tables.dashboard_sessions
        with self.engine.connect() as connection:
            row = connection.execute(select(table.c.user_name, table.c.role, table.c.key_sha256, table.c.created_at,
                                            table.c.expires_at).where(table.c.token_sha256 == token_hash(token))).first()
        return StoredSession(row.user_name, row.role, row.key_sha256, row.created_at, row.expires_at) if row else None

    def end(self, token: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(tables.dashboard_sessions).where(
                tables.dashboard_sessions.c.token_sha256 == token_hash(token)))


class TimelineSessions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, launch_id: str, now: float, expires_at: float, idle_seconds: float) -> None:
        table = tables.timeline_sessions
        with self.engine.begin() as connection:
            connection.execute(delete(table).where(table.c.expires_at < now))
            connection.execute(insert(table).values(launch_sha256=token_hash(launch_id), expires_at=expires_at,
                                                    idle_until=min(expires_at, now + idle_seconds)))

    def resume(self, launch_id: str, now: float, idle_seconds: float) -> bool:
        """Whether the launch's session is open (not ended, idle or expired); if it is, its idle time starts
        again; if it lapsed, it is ended."""
        table = tables.timeline_sessions
        key = table.c.launch_sha256 == token_hash(launch_id)
        with self.engine.begin() as connection:
            resumed = connection.execute(update(table).where(key, table.c.idle_until > now, table.c.expires_at > now)
                                         .values(idle_until=now + idle_seconds)).rowcount
            if not resumed:
                connection.execute(delete(table).where(key))
        return bool(resumed)

    def end(self, launch_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(tables.timeline_sessions).where(
                tables.timeline_sessions.c.launch_sha256 == token_hash(launch_id)))
