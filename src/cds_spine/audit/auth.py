"""Who is reading the audit: the credentials of an /audit request or a dashboard page (audit/access.py checks
them), wrong ones logged and limited per address (never a valid one) and per user a key names (a locked user's
right key too), and every read recorded (who, when, what) before it is
answered; a read that cannot be recorded is not answered (503). No users configured: 404."""
from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ..errors import ApiError, Issue, ServiceNotFound
from ..logs import fields
from .access import AuditAccess, Forbidden, Principal, Refused, UserLocked
from .state import Audit, AuditState
from .store import AuditRead

log = logging.getLogger(__name__)
SESSION_COOKIE = "cds_spine_audit_session"


class AuditUnauthorized(ApiError):
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}

    def __init__(self) -> None:
        super().__init__(Issue("login", "an audit user's API key or token is required"))


class AuditForbidden(ApiError):
    status = 403

    def __init__(self, why: str) -> None:
        super().__init__(Issue("forbidden", why))


class TooManyAttempts(ApiError):
    status = 429

    def __init__(self, retry_after: int, whose: str = "from this address") -> None:
        super().__init__(Issue("throttled", f"too many wrong credentials {whose}; try again in {retry_after} s"))
        self.headers = {"Retry-After": str(retry_after)}
        self.retry_after = retry_after


def enabled_access(state: AuditState) -> AuditAccess:
    """The audit's access, or 404 when no audit users are configured."""
    access = state.access
    if not access.enabled:
        raise ServiceNotFound(Issue("not-found", "not found: the audit has no readers on this service (the IT team "
                                                 "adds them: cds-spine audit-key NAME ROLE, then CDS_SPINE_AUDIT_USERS; "
                                                 "docs/deploy.md)"))
    return access


def address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def refused(request: Request, access: AuditAccess, why: str) -> None:
    """Counts and logs wrong credentials; past the address's limit, 429 instead of the caller's answer."""
    retry_after = access.limiter.retry_after(address(request))
    access.limiter.failed(address(request))
    log.warning("audit credentials refused from %s: %s", address(request), why,
                extra=fields(event="audit-credentials-refused", address=address(request), reason=why))
    if retry_after is not None:
        raise TooManyAttempts(retry_after)


def locked(request: Request, access: AuditAccess, exc: UserLocked) -> TooManyAttempts:
    """A key naming a locked user: counted against the address too, logged, and a 429 naming no user."""
    refused(request, access, str(exc))
    log.warning("audit user %s locked for %d s after too many wrong keys", exc.user, exc.retry_after,
                extra=fields(event="audit-user-locked", user=exc.user, retry_after=exc.retry_after))
    return TooManyAttempts(exc.retry_after, "for this user")


async def authenticate(request: Request, state: AuditState) -> Principal | None:
    """The signed-in user, or None when no credentials came. Wrong credentials: 401 (logged, counted per
    address and per user a key names; past either limit, 429); valid ones without a role: 403. A valid key, token or session is admitted even
    from an address past its limit: colleagues behind the same hospital NAT keep working while a guesser there is
    throttled (a 256-bit key is not found by guessing; the limit keeps the noise down and the log names it)."""
    access = enabled_access(state)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    cookie = request.cookies.get(SESSION_COOKIE)
    try:
        if scheme.lower() == "bearer" and token.strip():
            return (await access.bearer(token.strip()))[0]
        if cookie:
            return await run_in_threadpool(access.session, cookie)
    except Refused as exc:
        refused(request, access, str(exc))
        raise AuditUnauthorized() from None
    except UserLocked as exc:
        raise locked(request, access, exc) from None
    except Forbidden as exc:
        log.warning("audit access forbidden from %s: %s", address(request), exc,
                    extra=fields(event="audit-access-forbidden", address=address(request), reason=str(exc)))
        raise AuditForbidden("these credentials carry no cds-spine role") from None
    return None


async def record_read(request: Request, state: AuditState, principal: Principal) -> None:
    read = AuditRead(datetime.now(UTC), principal.name, principal.role, request.method,
                     request.url.path, request.url.query)
    await run_in_threadpool(state.store.record_read, read)


async def audit_reader(request: Request, state: Audit) -> Principal:
    """The /audit API's dependency: a signed-in user, whose read is recorded."""
    principal = await authenticate(request, state)
    if principal is None:
        raise AuditUnauthorized()
    await record_read(request, state, principal)
    return principal
