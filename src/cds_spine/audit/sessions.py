"""Dashboard sessions, kept in the audit store so that every worker and replica shares them: the browser holds a
random token, the store only its SHA-256 (who reads the database cannot make a session), with the user, the
role, the user's API key at sign-in and the expiry. Signing out deletes the session; expired ones are purged
as new ones open."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select

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
