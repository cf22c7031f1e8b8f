"""HTTP endpoints of the CDS Hooks protocol: discovery, service calls, feedback."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Request

from ..audit.store import FeedbackEvent
from ..jsonio import JsonResponse
from ..security.jwt import AuthenticationFailed
from .errors import CdsHooksError, Issue, PayloadTooLarge, ServiceNotFound, Unauthorized, UnsupportedMediaType
from .hooks import decode_json, parse_call, validate
from .models import CdsResponse, FeedbackRequest, Service
from .services import DISCOVERY, SERVICES

log = logging.getLogger("cds_spine.calls")
JSON_MEDIA_TYPES = ("application/json", "application/fhir+json")


async def authenticate(request: Request) -> None:
    """Every discovery, service and feedback call carries a JWT from a trusted client (unless disabled)."""
    verifier = request.app.state.verifier
    if verifier is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("no bearer token")
        endpoint = request.app.state.settings.public_base_url.rstrip("/") + request.url.path
        await verifier.verify(token.strip(), endpoint)
    except AuthenticationFailed as failure:
        log.warning("authentication failed: %s (iss=%s jti=%s path=%s)", failure.reason, failure.iss, failure.jti,
                    request.url.path)
        raise Unauthorized() from None


router = APIRouter(dependencies=[Depends(authenticate)])


def _service(service_id: str) -> Service:
    try:
        return SERVICES[service_id]
    except KeyError:
        raise ServiceNotFound(Issue("not-found", f"no CDS service with id {service_id!r}; "
                                                 f"see GET /cds-services")) from None


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object: JSON content type (415), bounded size (413), bounded parsing (400)."""
    settings = request.app.state.settings
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(Issue("not-supported", "send the body as application/json"))
    too_large = PayloadTooLarge(Issue("too-long", f"the body exceeds {settings.max_body_bytes} bytes "
                                                  f"(CDS_SPINE_MAX_BODY_BYTES)"))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.max_body_bytes:
            raise too_large
    return decode_json(bytes(body), settings.max_json_containers)


@router.get("/cds-services")
async def discovery() -> JsonResponse:
    return JsonResponse(DISCOVERY)


@router.post("/cds-services/{service_id}")
async def call_service(service_id: str, request: Request) -> JsonResponse:
    started = time.perf_counter()
    service = _service(service_id)
    hook_instance = patient = "-"
    try:
        call = parse_call(service, await json_body(request))
        hook_instance = call.request.hookInstance
        patient = request.app.state.patient_hasher(call.context.patientId)
        answer = await request.app.state.engine.answer(call, datetime.now(timezone.utc))
        log.info("service=%s hookInstance=%s patient=%s status=200 orders_assessed=%d cards=%d fetched=%s ms=%.1f",
                 service.id, hook_instance, patient, len(answer.assessments), len(answer.cards),
                 ",".join(answer.fetched_keys) or "none", (time.perf_counter() - started) * 1000)
        return JsonResponse(CdsResponse(cards=answer.cards).wire())
    except CdsHooksError as error:
        log.info("service=%s hookInstance=%s patient=%s status=%d problem=%s", service.id, hook_instance, patient,
                 error.status, ",".join(issue.expression or issue.code for issue in error.issues))
        raise


@router.post("/cds-services/{service_id}/feedback")
async def feedback(service_id: str, request: Request) -> JsonResponse:
    service = _service(service_id)
    parsed = validate(FeedbackRequest, await json_body(request))
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
