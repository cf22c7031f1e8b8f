"""The quality team's door: /audit JSON endpoints and the /dashboard, behind CDS_SPINE_AUDIT_API_KEY.

Not for EHRs: a separate credential, sent as `Authorization: Bearer <key>` or typed once into the
dashboard's sign-in page, which then keeps a signed session cookie. No key configured: 404.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
import hmac
import time
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response

from ..bodies import media_type, read_body
from ..errors import ApiError, InvalidRequest, Issue, ServiceNotFound, UnsupportedMediaType
from ..cdshooks.services import SERVICES
from ..jsonio import JsonResponse
from . import reports

DASHBOARD = Path(__file__).parent / "dashboard"
STATIC_FILES = {"dashboard.js", "dashboard.css", "sign-in.js", "chart.umd.min.js"}
SESSION_COOKIE = "cds_spine_audit_session"
FORM = "application/x-www-form-urlencoded"
SIGN_IN_MAX_BYTES = 4096
SESSION_SECONDS = 8 * 3600
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


class AuditUnauthorized(ApiError):
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}

    def __init__(self) -> None:
        super().__init__(Issue("login", "the audit API key is required"))


def _configured_key(request: Request) -> str:
    key = request.app.state.settings.audit_api_key
    if key is None:
        raise ServiceNotFound(Issue("not-found", "not found"))
    return key.get_secret_value()


def _signature(key: str, expires: int) -> str:
    return hmac.new(key.encode(), f"session:{expires}".encode(), hashlib.sha256).hexdigest()


def _session_cookie(key: str) -> str:
    expires = int(time.time()) + SESSION_SECONDS
    return f"{expires}.{_signature(key, expires)}"


def _has_access(request: Request, key: str) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
        return True
    expires, _, signature = request.cookies.get(SESSION_COOKIE, "").partition(".")
    return expires.isdigit() and int(expires) > time.time() and hmac.compare_digest(
        signature.encode(), _signature(key, int(expires)).encode())


async def audit_access(request: Request) -> None:
    if not _has_access(request, _configured_key(request)):
        raise AuditUnauthorized()


api = APIRouter(prefix="/audit", dependencies=[Depends(audit_access)])
pages = APIRouter(prefix="/dashboard")


def _day(request: Request, name: str, required: bool = False) -> date | None:
    value = request.query_params.get(name)
    if value is None:
        if required:
            raise InvalidRequest(Issue("required", f"{name} is required (YYYY-MM-DD)", name))
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(Issue("value", f"{name} must be a date, YYYY-MM-DD", name)) from None


def _period(request: Request) -> reports.Period:
    period = reports.Period(_day(request, "since"), _day(request, "until"))
    if period.since and period.until and period.since > period.until:
        raise InvalidRequest(Issue("value", "since must not be after until", "since"))
    return period


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name, str(default))
    if not value.isdigit() or not low <= int(value) <= high:
        raise InvalidRequest(Issue("value", f"{name} must be a whole number from {low} to {high}", name))
    return int(value)


def _engine(request: Request):
    return request.app.state.store.engine


@api.get("/summary")
async def summary(request: Request) -> JsonResponse:
    return JsonResponse(await run_in_threadpool(reports.summary, _engine(request), _period(request)))


@api.get("/report")
async def report(request: Request) -> Response:
    by = request.query_params.get("by", "month")
    if by not in reports.GROUPINGS:
        raise InvalidRequest(Issue("value", f"by must be one of {', '.join(reports.GROUPINGS)}", "by"))
    output = request.query_params.get("format", "json")
    if output not in ("json", "csv"):
        raise InvalidRequest(Issue("value", "format must be json or csv", "format"))
    period = _period(request)
    rows = await run_in_threadpool(reports.grouped, _engine(request), period, by)
    if output == "csv":
        return Response(reports.rows_as_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="cds-spine-report-by-{by}.csv"'})
    return JsonResponse({"period": period.as_dict(), "by": by, "rows": rows})


@api.get("/override-reasons")
async def override_reasons(request: Request) -> JsonResponse:
    period = _period(request)
    reasons = await run_in_threadpool(reports.override_reasons, _engine(request), period,
                                      request.app.state.knowledge)
    return JsonResponse({"period": period.as_dict(), "reasons": reasons})


DECISION_PARAMETERS = {"since", "until", "page", "pageSize", "service", "withOrders", "decision", "clinician",
                       "kind", "region", "overridden"}


def _choice(request: Request, name: str, allowed: Sequence[str]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise InvalidRequest(Issue("value", f"{name} must be one of {', '.join(allowed)}", name))
    return value


def _flag(request: Request, name: str) -> bool | None:
    value = _choice(request, name, ("true", "false"))
    return None if value is None else value == "true"


def _decision_filters(request: Request) -> reports.DecisionFilters:
    unknown = sorted(set(request.query_params) - DECISION_PARAMETERS)
    if unknown:
        raise InvalidRequest(Issue("not-supported", f"unknown parameter {unknown[0]!r}; the filters are "
                                                    f"{', '.join(sorted(DECISION_PARAMETERS))}", unknown[0]))
    service = _choice(request, "service", ("all", *SERVICES)) or reports.ORDER_SIGN
    with_orders = _flag(request, "withOrders")
    return reports.DecisionFilters(
        service=None if service == "all" else service, with_orders=True if with_orders is None else with_orders,
        decision=_choice(request, "decision", reports.DECISION_VALUES), clinician=request.query_params.get("clinician"),
        kind=_choice(request, "kind", reports.ORDER_KINDS),
        region=_choice(request, "region", tuple(request.app.state.knowledge.config.regions)),
        overridden=_flag(request, "overridden"))


@api.get("/decisions")
async def decisions(request: Request) -> JsonResponse:
    """Recorded calls, newest first, filtered (see reports.DecisionFilters)."""
    page = _int(request, "page", 1, 1, 1_000_000)
    page_size = _int(request, "pageSize", 50, 1, 500)
    return JsonResponse(await run_in_threadpool(reports.decisions, _engine(request), _period(request), page,
                                                page_size, _decision_filters(request)))


@api.get("/decisions/{call_id}")
async def decision(call_id: str, request: Request) -> JsonResponse:
    found = await run_in_threadpool(reports.decision, _engine(request), call_id)
    if found is None:
        raise ServiceNotFound(Issue("not-found", f"no recorded call with id {call_id!r}"))
    return JsonResponse(found)


@api.get("/measure-report")
async def measure_report(request: Request) -> JsonResponse:
    start, end = _day(request, "start", required=True), _day(request, "end", required=True)
    if start > end:
        raise InvalidRequest(Issue("value", "start must not be after end", "start"))
    return JsonResponse(await run_in_threadpool(reports.measure_report, _engine(request), start, end,
                                                datetime.now(timezone.utc)))


def _root(request: Request) -> str:
    """The path prefix a proxy serves the service under (CDS_SPINE_ROOT_PATH), for links and redirects."""
    return request.scope.get("root_path", "").rstrip("/")


def _redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(f"{_root(request)}{path}", status_code=303)


def _page(request: Request, name: str) -> Response:
    """A page; its links are relative to `<base href>`, the dashboard's URL under the proxy's prefix."""
    html = (DASHBOARD / name).read_text(encoding="utf-8").replace("{{base}}", f"{_root(request)}/dashboard/")
    return Response(html, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@pages.get("")
async def dashboard(request: Request) -> Response:
    if not _has_access(request, _configured_key(request)):
        return _redirect(request, "/dashboard/sign-in")
    return _page(request, "index.html")


@pages.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    _configured_key(request)
    return _page(request, "sign-in.html")


@pages.post("/sign-in")
async def sign_in(request: Request) -> Response:
    key = _configured_key(request)
    if media_type(request) != FORM:
        raise UnsupportedMediaType(Issue("not-supported", f"send the sign-in form as {FORM}"))
    form = parse_qs((await read_body(request, SIGN_IN_MAX_BYTES, "the sign-in form's limit")).decode("utf-8", "replace"),
                    keep_blank_values=True)
    if "key" not in form:
        raise InvalidRequest(Issue("required", "key is required", "key"))
    if not hmac.compare_digest(form["key"][0].encode(), key.encode()):
        return _redirect(request, "/dashboard/sign-in?failed=1")
    response = _redirect(request, "/dashboard")
    response.set_cookie(SESSION_COOKIE, _session_cookie(key), max_age=SESSION_SECONDS, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@pages.post("/sign-out")
async def sign_out(request: Request) -> Response:
    _configured_key(request)
    response = _redirect(request, "/dashboard/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@pages.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    _configured_key(request)
    if name not in STATIC_FILES:
        raise ServiceNotFound(Issue("not-found", "not found"))
    return FileResponse(DASHBOARD / "static" / name, headers={"X-Content-Type-Options": "nosniff"})
