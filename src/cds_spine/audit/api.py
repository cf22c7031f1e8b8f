"""The quality team's door: the /audit JSON endpoints, for named users (audit/auth.py), each read recorded.

Not for EHRs: separate credentials, sent as `Authorization: Bearer <key or token>` (or the dashboard's session
cookie). The reports read the live audit, or a bulk run (`run`); the decisions and the access log, the live
audit only."""
from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..errors import Issue, ServiceNotFound
from ..jsonio import JsonResponse
from ..validation import validate
from . import browse, formats, measure_report, runs, scoring
from .access import Principal
from .auth import AuditForbidden, audit_reader
from .orders import Orders, StoredOrders
from .queries import (
    AccessLogQuery,
    CommentsQuery,
    DecisionsQuery,
    MeasureReportQuery,
    NoQuery,
    OneRunQuery,
    Query,
    ReportCardsQuery,
    ReportQuery,
    RunQuery,
    choices,
)
from .report_cards import as_dict, report_cards
from .runs import RunOrders, find_run, list_runs
from .state import Audit, AuditState

AnyQuery = TypeVar("AnyQuery", bound=Query)
Reader = Annotated[Principal, Depends(audit_reader)]

router = APIRouter(prefix="/audit", dependencies=[Depends(audit_reader)])


def parsed(model: type[AnyQuery]) -> Callable[[Request, AuditState], AnyQuery]:
    """A dependency: the request's query as `model`; an unknown parameter or a wrong value is a 400 naming it."""

    def parse(request: Request, state: Audit) -> AnyQuery:
        return validate(model, dict(request.query_params), context=choices(state.knowledge, state.measure))

    return parse


def _orders(state: AuditState, run: str | None) -> Orders:
    """The live audit's orders, or a bulk run's."""
    if run is None:
        return StoredOrders(state.store.engine)
    found = find_run(state.bulk_runs_dir, run)
    if found is None:
        raise ServiceNotFound(Issue("not-found", f"no bulk run {run!r} (GET /audit/bulk-runs lists them)"))
    return found


def _plain_ids(state: AuditState, source: Orders) -> bool:
    """Whether the live audit, or the bulk run, keeps plain patient ids."""
    return source.plain_patient_ids if isinstance(source, RunOrders) else state.store.plain_patient_ids


def _shown_ids(state: AuditState, principal: Principal, item: dict[str, Any], plain: bool) -> dict[str, Any]:
    """A viewer never sees plain patient (or encounter) ids: where the store or the run keeps them, they are
    replaced by the keyed hash that stands for them elsewhere in the audit."""
    if plain and not principal.sees_plain_ids:
        item = {**item, **{key: state.store.patient_hasher(item[key]) for key in ("patient", "encounter")
                           if item[key]}}
    return item


@router.get("/me")
async def me(state: Audit, principal: Reader) -> JsonResponse:
    """Who is signed in, and what the dashboard needs to know before it draws."""
    return JsonResponse({"name": principal.name, "role": principal.role, "adherenceTarget": state.adherence_target,
                         "components": [{"id": c.id, "title": c.title} for c in state.measure.components],
                         "regions": state.knowledge.config.region_choices(),
                         "regionWords": state.knowledge.config.regions,
                         "findingWords": dict(state.knowledge.topics.displays)})


@router.get("/bulk-runs")
async def bulk_runs(state: Audit, _: Annotated[NoQuery, Depends(parsed(NoQuery))]) -> JsonResponse:
    """The bulk runs (`cds-spine audit-bulk --out` folders in CDS_SPINE_BULK_RUNS_DIR) the reports can read
    with `run`, newest first."""
    return JsonResponse({"runs": await run_in_threadpool(list_runs, state.bulk_runs_dir)})


@router.get("/measure")
async def measure(state: Audit, _: Annotated[NoQuery, Depends(parsed(NoQuery))]) -> JsonResponse:
    """The Measure every MeasureReport references (cards/measure.json)."""
    return JsonResponse(state.measure.resource, media_type="application/fhir+json")


@router.get("/summary")
async def summary(state: Audit, query: Annotated[RunQuery, Depends(parsed(RunQuery))]) -> JsonResponse:
    found = await run_in_threadpool(scoring.summary, _orders(state, query.run), query.period, state.measure,
                                    query.filters(state.measure, state.knowledge))
    return JsonResponse({**found, "adherenceTarget": state.adherence_target})


@router.get("/report")
async def report(state: Audit, query: Annotated[ReportQuery, Depends(parsed(ReportQuery))]) -> Response:
    rows = await run_in_threadpool(scoring.grouped, _orders(state, query.run), query.period, query.by, state.measure,
                                   query.filters(state.measure, state.knowledge))
    if query.format == "csv":
        return Response(formats.rows_as_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="cds-spine-report-by-{query.by}.csv"'})
    return JsonResponse({"period": query.period.as_dict(), "by": query.by, "rows": rows})


@router.get("/report-cards")
async def clinician_report_cards(state: Audit, principal: Reader,
                                 query: Annotated[ReportCardsQuery, Depends(parsed(ReportCardsQuery))]) -> Response:
    """One report card per clinician (filtered as every report is): the HTML pages, the PDF (an A4 page per
    clinician, and further pages for a long list of missed orders), or their numbers. Patients appear by their
    record id where the audit keeps plain ids and the reader may see them (an analyst), else by keyed hash."""
    from . import report_card_pages  # the PDF library: only when report cards are asked for

    source = _orders(state, query.run)
    plain = _plain_ids(state, source)
    shown_plain = plain and principal.sees_plain_ids
    found = await run_in_threadpool(report_cards, source, query.period, state.measure, state.knowledge,
                                    state.adherence_target,
                                    state.store.patient_hasher if plain and not shown_plain else (lambda patient: patient),
                                    query.filters(state.measure, state.knowledge), shown_plain)
    if query.format == "json":
        return JsonResponse(as_dict(found))
    if query.format == "pdf":
        return Response(await run_in_threadpool(report_card_pages.pdf_bytes, found), media_type="application/pdf",
                        headers={"Content-Disposition": 'attachment; filename="cds-spine-report-cards.pdf"'})
    nonce = secrets.token_urlsafe(16)
    return Response(report_card_pages.html(found, nonce=nonce), media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": f"default-src 'none'; style-src 'nonce-{nonce}'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


@router.get("/override-reasons")
async def override_reasons(state: Audit, query: Annotated[RunQuery, Depends(parsed(RunQuery))]) -> JsonResponse:
    reasons = await run_in_threadpool(scoring.override_reasons, _orders(state, query.run), query.period,
                                      state.measure, state.knowledge, query.filters(state.measure, state.knowledge))
    return JsonResponse({"period": query.period.as_dict(), "reasons": reasons})


@router.get("/override-comments")
async def override_comments(state: Audit, query: Annotated[CommentsQuery, Depends(parsed(CommentsQuery))]
                            ) -> JsonResponse:
    """Every overridden card with its reason and comment, newest first."""
    return JsonResponse(await run_in_threadpool(
        scoring.override_comments, _orders(state, query.run), query.period, state.measure, state.knowledge,
        query.page, query.pageSize, query.filters(state.measure, state.knowledge)))


@router.get("/decisions")
async def decisions(state: Audit, principal: Reader,
                    query: Annotated[DecisionsQuery, Depends(parsed(DecisionsQuery))]) -> JsonResponse:
    """Recorded calls, newest first, filtered (see audit.filters.Filters); with `run`, the bulk run's procedures
    in the same shape."""
    source = _orders(state, query.run)
    filters = query.filters(state.measure, state.knowledge)
    if isinstance(source, RunOrders):
        found = await run_in_threadpool(runs.decisions, source, query.period, state.knowledge, query.page,
                                        query.pageSize, filters)
    else:
        found = await run_in_threadpool(browse.decisions, state.store.engine, query.period, state.measure,
                                        query.page, query.pageSize, filters)
    plain = _plain_ids(state, source)
    return JsonResponse({**found, "items": [_shown_ids(state, principal, item, plain) for item in found["items"]]})


@router.get("/decisions/{call_id}")
async def decision(call_id: str, state: Audit, principal: Reader,
                   query: Annotated[OneRunQuery, Depends(parsed(OneRunQuery))]) -> JsonResponse:
    """One recorded call in full; with `run`, one procedure of the bulk run (by the id its list gives)."""
    source = _orders(state, query.run)
    if isinstance(source, RunOrders):
        found = await run_in_threadpool(runs.decision, source, state.knowledge, call_id)
    else:
        found = await run_in_threadpool(browse.decision, state.store.engine, state.measure, call_id)
    if found is None:
        raise ServiceNotFound(Issue("not-found", f"no row {call_id!r} in bulk run {query.run!r}" if query.run
                                    else f"no recorded call with id {call_id!r}"))
    return JsonResponse(_shown_ids(state, principal, found, _plain_ids(state, source)))


@router.get("/measure-report")
async def measure_report_of_period(state: Audit, query: Annotated[MeasureReportQuery, Depends(parsed(
        MeasureReportQuery))]) -> JsonResponse:
    return JsonResponse(await run_in_threadpool(measure_report.measure_report, state.store.engine, state.measure,
                                                query.start, query.end, datetime.now(UTC),
                                                query.type == "subject-list"),
                        media_type="application/fhir+json")


@router.get("/access-log")
async def access_log(state: Audit, principal: Reader,
                     query: Annotated[AccessLogQuery, Depends(parsed(AccessLogQuery))]) -> JsonResponse:
    """Who read the audit, when and what (analysts only), newest first."""
    if not principal.sees_plain_ids:
        raise AuditForbidden("the access log is for analysts")
    return JsonResponse(await run_in_threadpool(browse.access_log, state.store.engine, query.period, query.user,
                                                query.page, query.pageSize))
