"""HTTP endpoints of the CDS Hooks protocol: discovery, service calls, feedback."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from ..appstate import injected
from ..audit.memory import RememberedOverride, recent_overrides
from ..audit.store import CallRecord, CardRecord, FeedbackEvent, SqlAuditStore
from ..bodies import media_type, read_body
from ..errors import (
    Issue,
    ServiceNotFound,
    StoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)
from ..jsonio import JsonResponse
from ..logs import fields, note_refusal
from ..metrics import AUDIT_WRITE, AUTH_FAILURES, CARDS, DECISIONS
from ..pathway.card_wording import OverrideReasons
from ..security.jwt import AuthenticationFailed, Verifier
from ..settings import EhrProfile
from ..validation import validate
from .answers import Answer, CallAnswerer, Unanswered
from .calls import Call, Caller, decode_json, parse_call
from .models import Card, CdsResponse, FeedbackRequest, Service
from .offload import runs_inline
from .repeats import without_repeats
from .services import SERVICES

log = logging.getLogger("cds_spine.calls")
JSON_MEDIA_TYPES = ("application/json", "application/fhir+json")


@dataclass(frozen=True)
class RequestLimits:
    """How much a client may send: CDS_SPINE_MAX_BODY_BYTES, _BODY_TIMEOUT_SECONDS, _MAX_JSON_CONTAINERS and
    _MAX_DRAFT_ORDERS."""

    max_body_bytes: int
    body_timeout_seconds: float
    max_json_containers: int
    max_draft_orders: int


@dataclass(frozen=True)
class HookState:
    """What the CDS Hooks routes need, provided by create_app when the service starts."""

    answerer: CallAnswerer
    verifier: Verifier | None
    """None: JWTs are not checked (CDS_SPINE_AUTH=disabled, on a loopback address only)."""
    store: SqlAuditStore
    clock: Callable[[], datetime]
    knowledge_version: str
    public_base_url: str
    limits: RequestLimits
    audit_required: bool
    default_profile: EhrProfile
    """CDS_SPINE_EHR_PROFILE: for callers whose trusted-clients entry names none (and without JWTs)."""
    override_memory_hours: float
    override_reasons: OverrideReasons
    """cards/pathway.yaml: a reason sent back in the standard code system is recorded as the service's."""
    discovery: Mapping[str, Any]
    """What GET /cds-services answers (its prefetch templates depend on the knowledge)."""


Hooks = Annotated[HookState, Depends(injected(HookState))]


async def authenticate(request: Request, state: Hooks) -> Caller:
    """Every discovery, service and feedback call carries a JWT from a trusted client (unless disabled): the
    caller is that client (its profile shapes the cards, its FHIR servers are the only ones read)."""
    verifier = state.verifier
    if verifier is None:
        return Caller(state.default_profile)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("no bearer token")
        endpoint = state.public_base_url.rstrip("/") + request.url.path
        client = await verifier.verify(token.strip(), endpoint)
    except AuthenticationFailed as failure:
        check = failure.reason.split(" ", 1)[0].rstrip(":")
        AUTH_FAILURES.labels(check).inc()
        note_refusal(f"jwt-{check}")
        log.warning("authentication failed: %s (iss=%s jti=%s path=%s)", failure.reason, failure.iss, failure.jti,
                    request.url.path, extra=fields(event="authentication-failed", check=check, reason=failure.reason,
                                                   iss=failure.iss, jti=failure.jti, path=request.url.path))
        raise Unauthorized() from None
    except SQLAlchemyError as exc:  # the JWT replay cache lives in the audit store
        log.error("audit store failed to check a JWT for replay (%s)", type(exc).__name__)
        raise StoreUnavailable() from None
    return Caller(client.profile or state.default_profile, client.iss, client.tenant, client.fhir_servers)


Authenticated = Annotated[Caller, Depends(authenticate)]
router = APIRouter(dependencies=[Depends(authenticate)])


def _service(service_id: str) -> Service:
    try:
        return SERVICES[service_id]
    except KeyError:
        raise ServiceNotFound(Issue("not-found", f"no CDS service with id {service_id!r}; "
                                                 f"see GET /cds-services")) from None


async def json_body(request: Request, limits: RequestLimits) -> bytes:
    """The raw body of a JSON request: JSON content type (415), bounded size (413) and time to receive it (408).
    Decode it (decode_json, bounded parsing: 400) off the event loop."""
    if media_type(request) not in JSON_MEDIA_TYPES:
        raise UnsupportedMediaType(Issue("not-supported", "send the body as application/json"))
    return await read_body(request, limits.max_body_bytes, "CDS_SPINE_MAX_BODY_BYTES", limits.body_timeout_seconds)


def _write(state: HookState, write: Callable[[], None], what: str) -> bool:
    """Commit to the audit store (in a worker thread); False, logged, when it fails."""
    started = time.perf_counter()
    try:
        write()
    except SQLAlchemyError as exc:
        log.error("audit store failed to record %s (%s)", "a call" if what == "call" else what, type(exc).__name__)
        return False
    AUDIT_WRITE.labels(what).observe(time.perf_counter() - started)
    return True


def _stored_or_refused(state: HookState, stored: bool) -> None:
    """Every acknowledged record is committed before the answer: 503 when it was not, unless the audit is optional."""
    if not stored and state.audit_required:
        raise StoreUnavailable()


async def _recorded(state: HookState, write: Callable[[], None], what: str) -> None:
    """Commit to the audit store before answering; if it fails: 503, or (when allowed) log and go on."""
    _stored_or_refused(state, await run_in_threadpool(_write, state, write, what))


def _card_record(card: Card) -> CardRecord:
    return CardRecord(str(card.uuid), card.indicator, card.summary, tuple(str(s.uuid) for s in card.suggestions or ()),
                      card.source.topic.code if card.source.topic else None)


def _remembered(state: HookState, origin: str, patient_id: str, answer: Answer,
                now: datetime) -> list[RememberedOverride]:
    """The patient's recent overrides at the calling EHR, when a card could repeat one (override memory on)."""
    if not state.override_memory_hours or not any(card for _, card in answer.assessed):
        return []
    since = now - timedelta(hours=state.override_memory_hours)
    try:
        return recent_overrides(state.store.reader, origin, state.store.stored_patient(patient_id), since)
    except SQLAlchemyError as exc:  # the cards are shown; recording the call will say whether the store is down
        log.error("audit store failed to read the override memory (%s)", type(exc).__name__)
        return []


def _call_record(state: HookState, call: Call, origin: str, answer: Answer, received_at: datetime, status: int,
                 latency_ms: float) -> CallRecord:
    return CallRecord(
        received_at=received_at, service_id=call.service.id, hook=call.service.hook,
        hook_instance=call.request.hookInstance, user_id=call.context.userId, patient_id=call.context.patientId,
        encounter_id=call.context.encounterId, status=status,
        knowledge_version=state.knowledge_version, latency_ms=latency_ms, data_read=answer.data_read,
        fetched_keys=answer.fetched_keys,
        assessed=tuple((a, _card_record(card) if card else None) for a, card in answer.assessed),
        unassessed=tuple(answer.orders) if answer.unavailable else (),
        other_cards=tuple(_card_record(card) for card in answer.other_cards),
        problem=answer.unavailable.issues[0].diagnostics if answer.unavailable else None,
        user_display=answer.orderer.name, site=answer.orderer.site, origin=origin,
    )


@router.get("/cds-services")
async def discovery(state: Hooks) -> JsonResponse:
    return JsonResponse(state.discovery)


@router.post("/cds-services/{service_id}")
async def call_service(service_id: str, request: Request, state: Hooks, caller: Authenticated) -> JsonResponse:
    started = time.perf_counter()
    received_at = state.clock()
    service = _service(service_id)
    limits = state.limits
    body = await json_body(request, limits)
    inline = runs_inline(len(body))

    def recorded(call: Call, answer: Answer) -> tuple[Answer, bool]:
        """The audit store's work for the call (blocking, so in a worker thread): the override memory it reads, then
        the call it records (committed before the answer)."""
        origin = caller.origin(call.request.fhirServer)
        patient = state.store.patient_hasher(call.context.patientId)
        remembered = _remembered(state, origin, call.context.patientId, answer, received_at)
        shown, suppressed = without_repeats(answer, remembered)
        status = shown.unavailable.status if shown.unavailable else 200
        latency_ms = (time.perf_counter() - started) * 1000
        log.info("service=%s hookInstance=%s patient=%s status=%d orders=%d cards=%d fetched=%s ms=%.1f",
                 service.id, call.request.hookInstance, patient, status, len(shown.orders), len(shown.cards),
                 ",".join(shown.fetched_keys) or "none", latency_ms, extra=fields(
                     event="call", service=service.id, hookInstance=call.request.hookInstance, patient=patient,
                     status=status, orders=len(shown.orders), cards=len(shown.cards),
                     indicators=[card.indicator for card in shown.cards], fetched=list(shown.fetched_keys),
                     ms=round(latency_ms, 1)))
        record = replace(_call_record(state, call, origin, shown, received_at, status, latency_ms),
                         suppressed=suppressed)
        return shown, _write(state, lambda: state.store.record_call(record), "call")

    def from_prefetch(in_worker: bool) -> tuple[Call, Answer | Unanswered, tuple[Answer, bool] | None]:
        """Most calls' work (prefetch holds what they read): parsed and answered in one step; and recorded too when
        it runs in a worker thread already (a large call: one hop for its CPU work and the store's)."""
        call = parse_call(service, decode_json(body, limits.max_json_containers), limits.max_draft_orders)
        answer = state.answerer.answer_from_prefetch(call, received_at, caller)
        return call, answer, recorded(call, answer) if in_worker and isinstance(answer, Answer) else None

    call, answer, done = from_prefetch(False) if inline else await run_in_threadpool(from_prefetch, True)
    if isinstance(answer, Unanswered):  # the FHIR server completes what prefetch lacks
        answer = await state.answerer.answer(call, received_at, caller, inline, answer)
    if done is None:
        done = await run_in_threadpool(recorded, call, answer)
    answer, stored = done
    _stored_or_refused(state, stored)
    for assessment, _ in answer.assessed:
        DECISIONS.labels(assessment.decision.value).inc()
    for card in answer.cards:
        CARDS.labels(card.indicator).inc()
    if answer.unavailable:
        raise answer.unavailable
    return JsonResponse(CdsResponse(cards=answer.cards, systemActions=answer.system_actions or None).wire())


@router.post("/cds-services/{service_id}/feedback")
async def feedback(service_id: str, request: Request, state: Hooks, caller: Authenticated) -> JsonResponse:
    service = _service(service_id)
    body = await json_body(request, state.limits)
    parsed = await run_in_threadpool(
        lambda: validate(FeedbackRequest, decode_json(body, state.limits.max_json_containers)))
    received_at = state.clock()
    events = []
    for item in parsed.feedback:
        reason = item.overrideReason.reason if item.overrideReason else None
        system, code = state.override_reasons.canonical(reason.system, reason.code) if reason else (None, None)
        events.append(FeedbackEvent(
            service_id=service.id, card=item.card, outcome=item.outcome,
            accepted_suggestions=tuple(s.id for s in item.acceptedSuggestions or ()),
            override_system=system, override_code=code,
            override_comment=item.overrideReason.userComment if item.overrideReason else None,
            outcome_timestamp=item.outcomeTimestamp, received_at=received_at))
    await _recorded(state, lambda: state.store.record_feedback(events, caller.origins()), "feedback")
    log.info("service=%s feedback=%d outcomes=%s", service.id, len(events), ",".join(e.outcome for e in events),
             extra=fields(event="feedback", service=service.id, feedback=len(events),
                          outcomes=[e.outcome for e in events],
                          overrideReasons=[e.override_code for e in events if e.override_code]))
    return JsonResponse({"received": len(events)})
