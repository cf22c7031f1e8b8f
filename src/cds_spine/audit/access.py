"""Who may read the audit, as whom: named users with a role, by API key or OIDC bearer token.

- `CDS_SPINE_AUDIT_AUTH=api-keys`: users listed in CDS_SPINE_AUDIT_USERS, each with the SHA-256 of a key
  (`cds-spine audit-key NAME ROLE` makes one, `NAME.<random>`); the key is sent as `Authorization: Bearer <key>`.
  The name a key begins with is what a per-user limit counts wrong keys by: a guesser spread over many addresses
  locks that name for USER_LOCK_SECONDS (its right key included), while every other user keeps working.
- `CDS_SPINE_AUDIT_AUTH=oidc`: access tokens (JWTs) of an OpenID Connect provider, checked against its
  keys, issuer and audience; the user is a claim (preferred_username by default), the role is the
  `cds-spine-analyst` or `cds-spine-viewer` value of the roles claim.
The dashboard's sign-in page takes either and opens a session the store keeps (audit/sessions.py): the cookie
is a random token, ended by signing out, by the user's key being rotated or removed, and after at most
SESSION_SECONDS (or the OIDC token's expiry). Wrong credentials are logged (never the credential) and limited
per client address and, for keys that name their user, per user (an OIDC provider keeps its own per-user lockout).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import jwt
from jwt.exceptions import InvalidTokenError, PyJWKError

from ..security.keys import KeySource
from ..security.trusted_clients import ASYMMETRIC_ALGORITHMS, TrustedClient, trusted_issuer
from ..settings import USER_NAME, AuditUser, Role, Settings
from .sessions import SqlSessions, StoredSession

log = logging.getLogger(__name__)
ROLE_VALUES = {"cds-spine-analyst": "analyst", "cds-spine-viewer": "viewer"}
SESSION_SECONDS = 8 * 3600
FAILURE_WINDOW_SECONDS = 60.0
USER_LOCK_SECONDS = 15 * 60.0


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    key_sha256: str | None = None
    """api-keys: the key the user signed in with (a session ends when the user's key changes)."""

    @property
    def sees_plain_ids(self) -> bool:
        return self.role == "analyst"


class Refused(Exception):
    """Credentials were presented and are wrong; the reason is for the log."""


class Forbidden(Exception):
    """Valid credentials without a role that may read the audit."""


class UserLocked(Exception):
    """Too many wrong keys naming this user lately: any key naming them is refused until the window clears."""

    def __init__(self, user: str, retry_after: int) -> None:
        super().__init__(f"keys naming {user} are locked after too many wrong ones")
        self.user = user
        self.retry_after = retry_after


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(name: str) -> str:
    """A key that names its user (the per-user limit counts by it): NAME, a dot, 256 random bits (no dots)."""
    return f"{name}.{secrets.token_urlsafe(32)}"


def named_user(key: str) -> str | None:
    """The user a key names (before its last dot), or None for a key made before keys named their user."""
    name, dot, secret = key.rpartition(".")
    return name if dot and secret and USER_NAME.fullmatch(name) else None


class FailureLimiter:
    """At most `limit` wrong credentials per client (an address, or a user's name) in a sliding window (per
    process)."""

    def __init__(self, limit: int, window_seconds: float = FAILURE_WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.get(client, deque())
        cutoff = self.clock() - self.window_seconds
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            self._failures.pop(client, None)
        return failures

    def retry_after(self, client: str) -> int | None:
        """Seconds until the client may try again, or None if it may now."""
        failures = self._recent(client)
        if len(failures) < self.limit:
            return None
        return max(1, int(failures[0] + self.window_seconds - self.clock()) + 1)

    def failed(self, client: str) -> None:
        if len(self._failures) > 100_000:  # bounded memory under a spray of addresses
            self._failures.clear()
        self._failures.setdefault(client, deque()).append(self.clock())


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    audience: str
    user_claim: str
    roles_claim: str
    keys: KeySource


class AuditAccess:
    """Authenticates audit readers, and keeps the dashboard's sessions (in the store, shared by every replica)."""

    def __init__(self, users: tuple[AuditUser, ...], oidc: OidcProvider | None, sessions: SqlSessions,
                 limiter: FailureLimiter, user_limiter: FailureLimiter, clock: Callable[[], float] = time.time) -> None:
        self.users = users
        self.oidc = oidc
        self.sessions = sessions
        self.limiter = limiter
        """Wrong credentials per client address."""
        self.user_limiter = user_limiter
        """Wrong keys per user they name (any name, configured or not: a lock tells no one which names exist)."""
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.oidc is not None

    async def bearer(self, token: str) -> tuple[Principal, float]:
        """The principal a key or token stands for, and until when (epoch seconds). Raises Refused, Forbidden or
        UserLocked."""
        if self.oidc is not None:
            return await self._oidc(token)
        named = named_user(token)
        if named is not None and (retry_after := self.user_limiter.retry_after(named)) is not None:
            raise UserLocked(named, retry_after)
        digest = key_hash(token)
        found = None
        for user in self.users:  # compare with every user: the time taken does not tell which matched
            if hmac.compare_digest(digest, user.key_sha256):
                found = user
        if found is None:
            if named is not None:
                self.user_limiter.failed(named)
                raise Refused(f"wrong API key naming {named}")
            raise Refused("unknown API key")
        return Principal(found.name, found.role, found.key_sha256), self.clock() + SESSION_SECONDS

    async def _oidc(self, token: str) -> tuple[Principal, float]:
        provider = self.oidc
        assert provider is not None  # bearer() asks only when OIDC is configured
        try:
            header = jwt.get_unverified_header(token)
        except InvalidTokenError:
            raise Refused("not a JWT") from None
        kid, alg = header.get("kid"), header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise Refused(f"alg {alg!r} not allowed")
        key = await provider.keys.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise Refused("kid is not among the provider's keys")
        try:
            claims = jwt.decode(token, key=key.key, algorithms=[alg], audience=provider.audience,
                                issuer=provider.issuer, leeway=30, options={"require": ["exp", "iss", "aud"]})
        except (InvalidTokenError, PyJWKError, TypeError, ValueError) as exc:
            raise Refused(f"token refused ({type(exc).__name__})") from None
        name = claims.get(provider.user_claim) or claims.get("sub")
        roles = claims.get(provider.roles_claim) or []
        roles = [roles] if isinstance(roles, str) else roles if isinstance(roles, list) else []
        granted = [ROLE_VALUES[value] for value in roles if value in ROLE_VALUES]
        if not isinstance(name, str) or not name or not granted:
            raise Forbidden(f"no user or no cds-spine role in the token ({provider.roles_claim})")
        return Principal(name[:128], "analyst" if "analyst" in granted else "viewer"), float(claims["exp"])

    def open_session(self, principal: Principal, until: float) -> str:
        """A new session for the principal until `until` (at most SESSION_SECONDS): the cookie's token."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        self.sessions.open(token, StoredSession(principal.name, principal.role, principal.key_sha256, now,
                                                min(until, now + SESSION_SECONDS)))
        return token

    def session(self, token: str) -> Principal:
        """The principal of an open session, checked again on every request: not ended, not past its expiry nor
        SESSION_SECONDS after it began; in api-keys mode the user still configured with the same key, and the
        role they have now. Raises Refused."""
        found = self.sessions.find(token)
        if found is None:
            raise Refused("no such session (signed out, expired or never opened)")
        if self.clock() >= min(found.expires_at, found.created_at + SESSION_SECONDS):
            raise Refused("session expired")
        if self.oidc is not None:
            return Principal(found.user_name, "analyst" if found.role == "analyst" else "viewer")
        user = next((user for user in self.users if user.name == found.user_name), None)
        if user is None:
            raise Refused("session of a user no longer configured")
        if found.key_sha256 is None or not hmac.compare_digest(found.key_sha256, user.key_sha256):
            raise Refused("session opened with a key the user no longer has")
        return Principal(user.name, user.role, user.key_sha256)

    def end_session(self, token: str) -> None:
        self.sessions.end(token)


def audit_access(settings: Settings, sessions: SqlSessions, http: httpx.AsyncClient) -> AuditAccess:
    """Audit access as the settings configure it (`sessions`: the dashboard's, in the audit store)."""
    oidc = None
    if settings.audit_auth == "oidc":
        assert settings.audit_oidc_issuer and settings.audit_oidc_audience  # Settings requires them for oidc
        client = TrustedClient(iss=settings.audit_oidc_issuer, jwks_url=settings.audit_oidc_jwks_url,
                               jwks_file=settings.audit_oidc_jwks_file)
        oidc = OidcProvider(settings.audit_oidc_issuer, settings.audit_oidc_audience, settings.audit_oidc_user_claim,
                            settings.audit_oidc_roles_claim,
                            KeySource(trusted_issuer(client), http, settings.jwks_cache_seconds))
    users = settings.audit_users if settings.audit_auth == "api-keys" else ()
    return AuditAccess(users, oidc, sessions, FailureLimiter(settings.audit_max_failures_per_minute),
                       FailureLimiter(settings.audit_max_failures_per_user, USER_LOCK_SECONDS))
