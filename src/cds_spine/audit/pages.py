"""The dashboard's pages: sign-in (a key or token typed once, then a session the store keeps), the dashboard
itself and its static files, all from this service (no script or font from another host)."""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response

from ..bodies import media_type, read_body
from ..errors import InvalidRequest, Issue, ServiceNotFound, UnsupportedMediaType
from .access import SESSION_SECONDS, Forbidden, Refused, UserLocked
from .auth import SESSION_COOKIE, TooManyAttempts, authenticate, enabled_access, locked, record_read, refused
from .state import Audit

DASHBOARD = Path(__file__).parent / "dashboard"
STATIC_FILES = {"dashboard.js", "dashboard.css", "sign-in.js", "chart.umd.min.js"}
FORM = "application/x-www-form-urlencoded"
SIGN_IN_MAX_BYTES = 8192
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

router = APIRouter(prefix="/dashboard")


def _root(request: Request) -> str:
    """The path prefix a proxy serves the service under (CDS_SPINE_ROOT_PATH), for links and redirects."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(f"{_root(request)}{path}", status_code=303)


def _page(request: Request, name: str) -> Response:
    """A page; its links are relative to `<base href>`, the dashboard's URL under the proxy's prefix."""
    html = (DASHBOARD / name).read_text(encoding="utf-8").replace("{{base}}", f"{_root(request)}/dashboard/")
    return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("")
async def dashboard(request: Request, state: Audit) -> Response:
    """The dashboard; without audit readers (a fresh `make run`), a page that says how to add them."""
    if not state.access.enabled:
        return Response((DASHBOARD / "no-readers.html").read_bytes(), status_code=404,
                        media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
    principal = await authenticate(request, state)
    if principal is None:
        return _redirect(request, "/dashboard/sign-in")
    await record_read(request, state, principal)
    return _page(request, "index.html")


@router.get("/sign-in")
async def sign_in_page(request: Request, state: Audit) -> Response:
    enabled_access(state)
    return _page(request, "sign-in.html")


@router.post("/sign-in")
async def sign_in(request: Request, state: Audit) -> Response:
    access = enabled_access(state)
    if media_type(request) != FORM:
        raise UnsupportedMediaType(Issue("not-supported", f"send the sign-in form as {FORM}"))
    body = await read_body(request, SIGN_IN_MAX_BYTES, "the sign-in form's limit", state.body_timeout_seconds)
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if "key" not in form:
        raise InvalidRequest(Issue("required", "key is required", "key"))
    try:
        try:
            principal, until = await access.bearer(form["key"][0].strip())
        except (Refused, Forbidden) as exc:
            refused(request, access, f"sign-in: {exc}")
            return _redirect(request, "/dashboard/sign-in?failed=1")
        except UserLocked as exc:
            raise locked(request, access, exc) from None
    except TooManyAttempts as throttled:  # the page says how long to wait (the API answers 429)
        return _redirect(request, f"/dashboard/sign-in?wait={throttled.retry_after}")
    await record_read(request, state, principal)
    response = _redirect(request, "/dashboard")
    token = await run_in_threadpool(access.open_session, principal, until)
    response.set_cookie(SESSION_COOKIE, token, max_age=max(1, int(min(until - time.time(), SESSION_SECONDS))),
                        httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, state: Audit) -> Response:
    """Ends the session in the store (a copy of the cookie no longer works), then forgets the cookie."""
    access = enabled_access(state)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await run_in_threadpool(access.end_session, token)
    response = _redirect(request, "/dashboard/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/static/{name}")
async def static(name: str, state: Audit) -> Response:
    enabled_access(state)
    if name not in STATIC_FILES:
        raise ServiceNotFound(Issue("not-found", "not found"))
    return FileResponse(DASHBOARD / "static" / name, headers={"X-Content-Type-Options": "nosniff"})
