"""Who may read the audit, as whom: named users with a role, by API key or OIDC bearer token.

- `CDS_SPINE_AUDIT_AUTH=api-keys`: users listed in CDS_SPINE_AUDIT_USERS, each with the SHA-256 of a key
  (`cds-spine audit-key NAME ROLE` makes one); the key is sent as `Authorization: Bearer <key>`.
- `CDS_SPINE_AUDIT_AUTH=oidc`: access tokens (JWTs) of an OpenID Connect provider, checked against its
  keys, issuer and audience; the user is a claim (preferred_username by default), the role is the
  `cds-spine-analyst` or `cds-spine-viewer` value of the roles claim.
The dashboard's sign-in page takes either and keeps a session cookie signed with a key kept in the store.
Wrong credentials are logged (never the credential) and limited per client address.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx
import jwt
from jwt.exceptions import InvalidTokenError, PyJWKError

from ..security.keys import KeySource
from ..security.trusted_clients import ASYMMETRIC_ALGORITHMS, TrustedClient, trusted_issuer
from ..settings import AuditUser, Role, Settings

log = logging.getLogger(__name__)
ROLE_VALUES = {"cds-spine-analyst": "analyst", "cds-spine-viewer": "viewer"}
SESSION_KEY = "dashboard-session-key"
SESSION_SECONDS = 8 * 3600
FAILURE_WINDOW_SECONDS = 60.0


class SessionKeys(Protocol):
    """Where the dashboard's session key is kept (the audit store, shared by every replica)."""

    def stored_key(self, name: str) -> bytes: ...


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    @property
    def sees_plain_ids(self) -> bool:
        return self.role == "analyst"


class Refused(Exception):
    """Credentials were presented and are wrong; the reason is for the log."""


class Forbidden(Exception):
    """Valid credentials without a role that may read the audit."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return secrets.token_urlsafe(32)


class FailureLimiter:
    """At most `limit` wrong credentials per client address in a sliding minute (per process)."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.get(client, deque())
        cutoff = self.clock() - FAILURE_WINDOW_SECONDS
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
        return max(1, int(failures[0] + FAILURE_WINDOW_SECONDS - self.clock()) + 1)

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
    """Authenticates audit readers. `session_key` is fetched once from the store (shared by every replica)."""

    def __init__(self, users: tuple[AuditUser, ...], oidc: OidcProvider | None, session_key: Callable[[], bytes],
                 limiter: FailureLimiter) -> None:
        self.users = users
        self.oidc = oidc
        self._session_key_source = session_key
        self._session_key: bytes | None = None
        self.limiter = limiter

    @property
    def enabled(self) -> bool:
        return bool(self.users) or self.oidc is not None

    def _key(self) -> bytes:
        if self._session_key is None:
            self._session_key = self._session_key_source()
        return self._session_key

    async def bearer(self, token: str) -> tuple[Principal, float]:
        """The principal a key or token stands for, and until when (epoch seconds). Raises Refused or
        Forbidden."""
        if self.oidc is not None:
            return await self._oidc(token)
        digest = key_hash(token)
        found = None
        for user in self.users:  # compare with every user: the time taken does not tell which matched
            if hmac.compare_digest(digest, user.key_sha256):
                found = user
        if found is None:
            raise Refused("unknown API key")
        return Principal(found.name, found.role), time.time() + SESSION_SECONDS

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

    def session_cookie(self, principal: Principal, until: float) -> str:
        expires = int(min(until, time.time() + SESSION_SECONDS))
        name = base64.urlsafe_b64encode(principal.name.encode()).decode().rstrip("=")
        payload = f"{expires}.{name}.{principal.role}"
        return f"{payload}.{self._signature(payload)}"

    def _signature(self, payload: str) -> str:
        return hmac.new(self._key(), f"session:{payload}".encode(), hashlib.sha256).hexdigest()

    def session(self, cookie: str) -> Principal:
        """The principal of a valid, unexpired session cookie; in api-keys mode the user must still be
        configured, with the role they have now. Raises Refused."""
        payload, _, signature = cookie.rpartition(".")
        expires, _, rest = payload.partition(".")
        name_part, _, role = rest.partition(".")
        if not (expires.isdigit() and hmac.compare_digest(signature.encode(), self._signature(payload).encode())):
            raise Refused("session cookie not signed by this service")
        if int(expires) <= time.time():
            raise Refused("session expired")
        try:
            name = base64.urlsafe_b64decode(name_part + "=" * (-len(name_part) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Refused("session cookie not readable") from None
        if self.oidc is not None:
            return Principal(name, "analyst" if role == "analyst" else "viewer")
        user = next((user for user in self.users if user.name == name), None)
        if user is None:
            raise Refused("session of a user no longer configured")
        return Principal(user.name, user.role)


def audit_access(settings: Settings, store: SessionKeys, http: httpx.AsyncClient) -> AuditAccess:
    """Audit access as the settings configure it (`store` keeps the dashboard's session key)."""
    oidc = None
    if settings.audit_auth == "oidc":
        assert settings.audit_oidc_issuer and settings.audit_oidc_audience  # Settings requires them for oidc
        client = TrustedClient(iss=settings.audit_oidc_issuer, jwks_url=settings.audit_oidc_jwks_url,
                               jwks_file=settings.audit_oidc_jwks_file)
        oidc = OidcProvider(settings.audit_oidc_issuer, settings.audit_oidc_audience, settings.audit_oidc_user_claim,
                            settings.audit_oidc_roles_claim,
                            KeySource(trusted_issuer(client), http, settings.jwks_cache_seconds))
    users = settings.audit_users if settings.audit_auth == "api-keys" else ()
    return AuditAccess(users, oidc, lambda: store.stored_key(SESSION_KEY),
                       FailureLimiter(settings.audit_max_failures_per_minute))
