"""HTTP endpoints of the CDS Hooks protocol: discovery, service calls, feedback."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from fastapi import APIRouter, Request

from ..audit.store import FeedbackEvent
from ..jsonio import JsonResponse
from .errors import CdsHooksError, Issue, ServiceNotFound
from .hooks import decode_json, parse_call, validate
from .models import CdsResponse, FeedbackRequest, Service
from .services import DISCOVERY, SERVICES

log = logging.getLogger("cds_spine.calls")
router = APIRouter()


def _service(service_id: str) -> Service:
    try:
        return SERVICES[service_id]
    except KeyError:
        raise ServiceNotFound(Issue("not-found", f"no CDS service with id {service_id!r}; "
                                                 f"see GET /cds-services")) from None


@router.get("/cds-services")
async def discovery() -> JsonResponse:
    return JsonResponse(DISCOVERY)


@router.post("/cds-services/{service_id}")
async def call_service(service_id: str, request: Request) -> JsonResponse:
    started = time.perf_counter()
    service = _service(service_id)
    hook_instance = status = "-"
    try:
        call = parse_call(service, await request.body())
        hook_instance = call.request.hookInstance
        answer = await request.app.state.engine.answer(call, datetime.now(timezone.utc))
        status = "200"
        log.info("service=%s hookInstance=%s status=200 orders_assessed=%d cards=%d fetched=%s ms=%.1f",
                 service.id, hook_instance, len(answer.assessments), len(answer.cards),
                 ",".join(answer.fetched_keys) or "none", (time.perf_counter() - started) * 1000)
        return JsonResponse(CdsResponse(cards=answer.cards).wire())
    except CdsHooksError as error:
        status = str(error.status)
        log.info("service=%s hookInstance=%s status=%s problem=%s", service.id, hook_instance, status,
                 ",".join(issue.expression or issue.code for issue in error.issues))
        raise


@router.post("/cds-services/{service_id}/feedback")
async def feedback(service_id: str, request: Request) -> JsonResponse:
    service = _service(service_id)
    parsed = validate(FeedbackRequest, decode_json(await request.body()))
    received_at = datetime.now(timezone.utc)
    events = [
        FeedbackEvent(
            service_id=service.id, card=item.card, outcome=item.outcome,
            accepted_suggestions=tuple(s.id for s in item.acceptedSuggestions or ()),
            override_system=item.overrideReason.reason.system if item.overrideReason and item.overrideReason.reason
            else None,
            override_code=item.overrideReason.reason.code if item.overrideReason and item.overrideReason.reason
            else None,
            override_comment=item.overrideReason.userComment if item.overrideReason else None,
            outcome_timestamp=item.outcomeTimestamp, received_at=received_at,
        )
        for item in parsed.feedback
    ]
    request.app.state.store.record_feedback(events)
    log.info("service=%s feedback=%d outcomes=%s", service.id, len(events), ",".join(e.outcome for e in events))
    return JsonResponse({"received": len(events)})
