"""The quality team's door: /audit JSON endpoints and the /dashboard, for named users (audit/access.py).

Not for EHRs: separate credentials, sent as `Authorization: Bearer <key or token>` or typed once into the
dashboard's sign-in page, which then keeps a signed session cookie. Every read is recorded (who, when,
what) before it is answered; a read that cannot be recorded is not answered (503). No users configured: 404.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response

from ..bodies import media_type, read_body
from ..errors import ApiError, InvalidRequest, Issue, ServiceNotFound, UnsupportedMediaType
from ..jsonio import JsonResponse
from ..logs import fields
from ..service_ids import SERVICE_IDS
from . import reports
from .access import AuditAccess, Forbidden, Principal, Refused
from .runs import find_run, list_runs
from .store import AuditRead

log = logging.getLogger(__name__)
DASHBOARD = Path(__file__).parent / "dashboard"
STATIC_FILES = {"dashboard.js", "dashboard.css", "sign-in.js", "chart.umd.min.js"}
SESSION_COOKIE = "cds_spine_audit_session"
FORM = "application/x-www-form-urlencoded"
SIGN_IN_MAX_BYTES = 8192
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
PERIOD = {"since", "until"}
ORDER_FILTERS = {"decision", "clinician", "kind", "region", "site", "component", "overridden"}
PAGING = {"page", "pageSize"}
RUN = {"run"}
"""A bulk run (`cds-spine audit-bulk`) under CDS_SPINE_BULK_RUNS_DIR, read instead of the live audit."""


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

    def __init__(self, retry_after: int) -> None:
        super().__init__(Issue("throttled", f"too many wrong credentials from this address; try again in "
                                            f"{retry_after} s"))
        self.headers = {"Retry-After": str(retry_after)}


def _access(request: Request) -> AuditAccess:
    access: AuditAccess = request.app.state.audit_access
    if not access.enabled:
        raise ServiceNotFound(Issue("not-found", "not found"))
    return access


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _refused(request: Request, access: AuditAccess, why: str) -> None:
    access.limiter.failed(_address(request))
    log.warning("audit credentials refused from %s: %s", _address(request), why,
                extra=fields(event="audit-credentials-refused", address=_address(request), reason=why))


async def authenticate(request: Request) -> Principal | None:
    """The signed-in user, or None when no credentials came. Wrong credentials: 401 (logged, counted per
    address; past the limit, 429 whatever comes); valid ones without a role: 403."""
    access = _access(request)
    retry_after = access.limiter.retry_after(_address(request))
    if retry_after is not None:
        raise TooManyAttempts(retry_after)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    cookie = request.cookies.get(SESSION_COOKIE)
    try:
        if scheme.lower() == "bearer" and token.strip():
            return (await access.bearer(token.strip()))[0]
        if cookie:
            return access.session(cookie)
    except Refused as exc:
        _refused(request, access, str(exc))
        raise AuditUnauthorized() from None
    except Forbidden as exc:
        log.warning("audit access forbidden from %s: %s", _address(request), exc,
                    extra=fields(event="audit-access-forbidden", address=_address(request), reason=str(exc)))
        raise AuditForbidden("these credentials carry no cds-spine role") from None
    return None


async def record_read(request: Request, principal: Principal) -> None:
    read = AuditRead(datetime.now(UTC), principal.name, principal.role, request.method,
                     request.url.path, request.url.query)
    await run_in_threadpool(request.app.state.store.record_read, read)


async def audit_reader(request: Request) -> Principal:
    principal = await authenticate(request)
    if principal is None:
        raise AuditUnauthorized()
    await record_read(request, principal)
    request.state.principal = principal
    return principal


api = APIRouter(prefix="/audit", dependencies=[Depends(audit_reader)])
pages = APIRouter(prefix="/dashboard")


def _known_parameters(request: Request, allowed: Collection[str]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise InvalidRequest(Issue("not-supported", f"unknown parameter {unknown[0]!r}; this endpoint takes "
                                                    f"{', '.join(sorted(allowed))}", unknown[0]))


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


def _choice(request: Request, name: str, allowed: Sequence[str]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise InvalidRequest(Issue("value", f"{name} must be one of {', '.join(allowed)}", name))
    return value


def _flag(request: Request, name: str) -> bool | None:
    value = _choice(request, name, ("true", "false"))
    return None if value is None else value == "true"


def _filters(request: Request, allowed: Collection[str]) -> reports.Filters:
    """The filters of reports.Filters from the query; unknown parameters and values are 400s naming them."""
    _known_parameters(request, allowed)
    service = _choice(request, "service", ("all", *SERVICE_IDS)) or reports.ORDER_SIGN
    with_orders = _flag(request, "withOrders")
    measure = request.app.state.measure
    component = _choice(request, "component", [c.id for c in measure.components])
    return reports.Filters(
        service=None if service == "all" else service, with_orders=True if with_orders is None else with_orders,
        decision=_choice(request, "decision", reports.DECISION_VALUES), clinician=request.query_params.get("clinician"),
        kind=_choice(request, "kind", reports.ORDER_KINDS),
        region=_choice(request, "region", tuple(request.app.state.knowledge.config.regions)),
        site=request.query_params.get("site"), component=measure.component(component) if component else None,
        overridden=_flag(request, "overridden"))


def _engine(request: Request):
    return request.app.state.store.engine


def _orders(request: Request) -> reports.Orders:
    """The live audit's orders, or a bulk run's (`run`)."""
    name = request.query_params.get("run")
    if name is None:
        return reports.StoredOrders(_engine(request))
    run = find_run(request.app.state.settings.bulk_runs_dir, name)
    if run is None:
        raise ServiceNotFound(Issue("not-found", f"no bulk run {name!r} (GET /audit/bulk-runs lists them)"))
    return run


@api.get("/me")
async def me(request: Request) -> JsonResponse:
    """Who is signed in, and what the dashboard needs to know before it draws."""
    principal: Principal = request.state.principal
    return JsonResponse({"name": principal.name, "role": principal.role,
                         "adherenceTarget": request.app.state.settings.adherence_target,
                         "components": [{"id": c.id, "title": c.title} for c in request.app.state.measure.components],
                         "regions": sorted(request.app.state.knowledge.config.regions)})


@api.get("/bulk-runs")
async def bulk_runs(request: Request) -> JsonResponse:
    """The bulk runs (`cds-spine audit-bulk --out` folders in CDS_SPINE_BULK_RUNS_DIR) the reports can read
    with `run`, newest first."""
    _known_parameters(request, ())
    return JsonResponse({"runs": await run_in_threadpool(list_runs, request.app.state.settings.bulk_runs_dir)})


@api.get("/measure")
async def measure(request: Request) -> JsonResponse:
    """The Measure every MeasureReport references (cards/measure.json)."""
    _known_parameters(request, ())
    return JsonResponse(request.app.state.measure.resource, media_type="application/fhir+json")


@api.get("/summary")
async def summary(request: Request) -> JsonResponse:
    filters = _filters(request, PERIOD | ORDER_FILTERS | RUN)
    found = await run_in_threadpool(reports.summary, _orders(request), _period(request), request.app.state.measure,
                                    filters)
    return JsonResponse({**found, "adherenceTarget": request.app.state.settings.adherence_target})


@api.get("/report")
async def report(request: Request) -> Response:
    filters = _filters(request, PERIOD | ORDER_FILTERS | RUN | {"by", "format"})
    by = _choice(request, "by", reports.GROUPINGS) or "month"
    output = _choice(request, "format", ("json", "csv")) or "json"
    period = _period(request)
    rows = await run_in_threadpool(reports.grouped, _orders(request), period, by, request.app.state.measure, filters)
    if output == "csv":
        return Response(reports.rows_as_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="cds-spine-report-by-{by}.csv"'})
    return JsonResponse({"period": period.as_dict(), "by": by, "rows": rows})


@api.get("/override-reasons")
async def override_reasons(request: Request) -> JsonResponse:
    filters = _filters(request, PERIOD | ORDER_FILTERS | RUN)
    period = _period(request)
    reasons = await run_in_threadpool(reports.override_reasons, _orders(request), period, request.app.state.measure,
                                      request.app.state.knowledge, filters)
    return JsonResponse({"period": period.as_dict(), "reasons": reasons})


@api.get("/override-comments")
async def override_comments(request: Request) -> JsonResponse:
    """Every overridden card with its reason and comment, newest first."""
    filters = _filters(request, PERIOD | ORDER_FILTERS | PAGING | RUN)
    page, page_size = _int(request, "page", 1, 1, 1_000_000), _int(request, "pageSize", 50, 1, 500)
    return JsonResponse(await run_in_threadpool(
        reports.override_comments, _orders(request), _period(request), request.app.state.measure,
        request.app.state.knowledge, page, page_size, filters))


def _shown_ids(request: Request, item: dict) -> dict:
    """A viewer never sees plain patient (or encounter) ids: where the store keeps them, they are replaced by
    the keyed hash that stands for them elsewhere in the audit."""
    store = request.app.state.store
    if store.plain_patient_ids and not request.state.principal.sees_plain_ids:
        item = {**item, **{key: store.patient_hasher(item[key]) for key in ("patient", "encounter") if item[key]}}
    return item


@api.get("/decisions")
async def decisions(request: Request) -> JsonResponse:
    """Recorded calls, newest first, filtered (see reports.Filters)."""
    filters = _filters(request, PERIOD | ORDER_FILTERS | PAGING | {"service", "withOrders"})
    page, page_size = _int(request, "page", 1, 1, 1_000_000), _int(request, "pageSize", 50, 1, 500)
    found = await run_in_threadpool(reports.decisions, _engine(request), _period(request), request.app.state.measure,
                                    page, page_size, filters)
    return JsonResponse({**found, "items": [_shown_ids(request, item) for item in found["items"]]})


@api.get("/decisions/{call_id}")
async def decision(call_id: str, request: Request) -> JsonResponse:
    _known_parameters(request, ())
    found = await run_in_threadpool(reports.decision, _engine(request), request.app.state.measure, call_id)
    if found is None:
        raise ServiceNotFound(Issue("not-found", f"no recorded call with id {call_id!r}"))
    return JsonResponse(_shown_ids(request, found))


@api.get("/measure-report")
async def measure_report(request: Request) -> JsonResponse:
    _known_parameters(request, {"start", "end", "type"})
    start, end = _day(request, "start", required=True), _day(request, "end", required=True)
    if start > end:
        raise InvalidRequest(Issue("value", "start must not be after end", "start"))
    report_type = _choice(request, "type", ("summary", "subject-list")) or "summary"
    return JsonResponse(await run_in_threadpool(reports.measure_report, _engine(request), request.app.state.measure,
                                                start, end, datetime.now(UTC), report_type == "subject-list"),
                        media_type="application/fhir+json")


@api.get("/access-log")
async def access_log(request: Request) -> JsonResponse:
    """Who read the audit, when and what (analysts only), newest first."""
    if not request.state.principal.sees_plain_ids:
        raise AuditForbidden("the access log is for analysts")
    _known_parameters(request, PERIOD | PAGING | {"user"})
    page, page_size = _int(request, "page", 1, 1, 1_000_000), _int(request, "pageSize", 100, 1, 1000)
    return JsonResponse(await run_in_threadpool(reports.access_log, _engine(request), _period(request),
                                                request.query_params.get("user"), page, page_size))


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
    principal = await authenticate(request)
    if principal is None:
        return _redirect(request, "/dashboard/sign-in")
    await record_read(request, principal)
    return _page(request, "index.html")


@pages.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    _access(request)
    return _page(request, "sign-in.html")


@pages.post("/sign-in")
async def sign_in(request: Request) -> Response:
    access = _access(request)
    retry_after = access.limiter.retry_after(_address(request))
    if retry_after is not None:
        raise TooManyAttempts(retry_after)
    if media_type(request) != FORM:
        raise UnsupportedMediaType(Issue("not-supported", f"send the sign-in form as {FORM}"))
    form = parse_qs((await read_body(request, SIGN_IN_MAX_BYTES, "the sign-in form's limit")).decode("utf-8", "replace"),
                    keep_blank_values=True)
    if "key" not in form:
        raise InvalidRequest(Issue("required", "key is required", "key"))
    try:
        principal, until = await access.bearer(form["key"][0].strip())
    except (Refused, Forbidden) as exc:
        _refused(request, access, f"sign-in: {exc}")
        return _redirect(request, "/dashboard/sign-in?failed=1")
    await record_read(request, principal)
    response = _redirect(request, "/dashboard")
    response.set_cookie(SESSION_COOKIE, access.session_cookie(principal, until), max_age=max(1, int(until - time.time())),
                        httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@pages.post("/sign-out")
async def sign_out(request: Request) -> Response:
    _access(request)
    response = _redirect(request, "/dashboard/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@pages.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    _access(request)
    if name not in STATIC_FILES:
        raise ServiceNotFound(Issue("not-found", "not found"))
    return FileResponse(DASHBOARD / "static" / name, headers={"X-Content-Type-Options": "nosniff"})
