"""A service call from validated request to cards: the protocol side of the seam with the pathway."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from .. import jsonio
from ..errors import DataUnavailableError, InvalidRequest, Issue
from ..fhir.client import FhirClient
from ..fhir.gather import build_record, read_draft_orders, relevance_filter
from ..fhir.people import Orderer, find_orderer
from ..fhir.prefetch import CONDITION_KEYS, RECORD_KEYS, DataUnavailable, FhirAccess, Obtained, obtain
from ..metrics import DATA_UNAVAILABLE, UnplacedCodeSystems
from ..pathway import (
    Assessment,
    ClassifiedOrder,
    DraftOrder,
    Knowledge,
    PatientSummary,
    assess,
    classify_all,
    summarize_patient,
)
from ..settings import Settings
from .cards import CardOptions, render_one, render_patient_summary
from .models import CONTEXTS, Card, HookRequest, OrderSelectContext, PatientViewContext, Service

Model = TypeVar("Model", bound=BaseModel)


def validate(model: type[Model], data: Any, prefix: str = "") -> Model:
    """The model, or InvalidRequest with one OperationOutcome issue per problem, naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False, include_input=False):
            path = field_path(prefix, *error["loc"]) or None
            if error["type"] == "missing":
                issues.append(Issue("required", f"{path} is required", path))
            else:
                message = error["msg"].removeprefix("Value error, ")
                issues.append(Issue("invalid", f"{path}: {message}" if path else message, path))
        raise InvalidRequest(*issues) from None


def field_path(*parts: str | int) -> str:
    """A FHIRPath-like name of a field: `context.draftOrders.entry[3].resource`."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "":
            path += f".{part}" if path else part
    return path


def decode_json(body: bytes, max_containers: int) -> dict[str, Any]:
    """A JSON object, its members as plain Python, except the values under `prefetch`, which stay lazy
    (only the resources the rules read are ever made into Python objects). Parsing is bounded by the
    body size, `max_containers`, and a nesting depth of 1024."""
    # Each container takes at least two bytes, so only a body over 2 * max_containers needs counting.
    if len(body) > 2 * max_containers and body.count(b"{") + body.count(b"[") > max_containers:
        raise InvalidRequest(Issue("too-costly", f"the body has more than {max_containers} JSON objects and "
                                                 f"arrays (CDS_SPINE_MAX_JSON_CONTAINERS)"))
    try:
        document = jsonio.parse(body)
    except jsonio.JSONDecodeError as exc:
        raise InvalidRequest(Issue("structure", f"the body is not valid JSON ({exc})")) from None
    if document.__class__ not in jsonio.OBJECTS:
        raise InvalidRequest(Issue("structure", "the body must be a JSON object"))
    if b"\\u0000" in body:
        where = jsonio.nul_character_at(jsonio.materialize(document))
        if where is not None:
            raise InvalidRequest(Issue("invalid", f"{where or 'the body'}: a NUL character (\\u0000) is not "
                                                  f"allowed in a name or a string", where or None))
    data = {key: jsonio.materialize(document[key]) for key in document.keys() if key != "prefetch"}
    if "prefetch" in document:
        prefetch = document["prefetch"]
        data["prefetch"] = ({key: prefetch[key] for key in prefetch.keys()} if prefetch.__class__ in jsonio.OBJECTS
                            else jsonio.materialize(prefetch))
    return data


@dataclass(frozen=True)
class Call:
    service: Service
    request: HookRequest
    context: PatientViewContext


    @property
    def draft_orders(self) -> list[dict[str, Any]]:
        draft = getattr(self.context, "draftOrders", None)
        return draft.resources if draft else []


def parse_call(service: Service, body: dict[str, Any], max_draft_orders: int) -> Call:
    """The validated call: 400 naming the field for anything of the wrong kind, or too many draft orders."""
    request = validate(HookRequest, body)
    if request.hook != service.hook:
        raise InvalidRequest(Issue("invalid", f"hook {request.hook!r} does not match service {service.id!r}, "
                                              f"which handles {service.hook!r}", "hook"))
    draft = request.context.get("draftOrders")
    entries = draft.get("entry") if isinstance(draft, dict) else None
    if isinstance(entries, list) and len(entries) > max_draft_orders:
        raise InvalidRequest(Issue("too-costly", f"context.draftOrders.entry: {len(entries)} draft orders, more than "
                                                 f"{max_draft_orders} (CDS_SPINE_MAX_DRAFT_ORDERS)",
                                   "context.draftOrders.entry"))
    return Call(service, request, validate(CONTEXTS[service.hook], request.context, prefix="context"))


@dataclass(frozen=True)
class Answer:
    """What a call produced, for the response and for the audit."""

    assessed: list[tuple[Assessment, Card | None]] = field(default_factory=list)
    other_cards: list[Card] = field(default_factory=list)
    orders: list[ClassifiedOrder] = field(default_factory=list)
    """The ESI and surgery orders in scope."""
    data_read: bool = False
    fetched_keys: tuple[str, ...] = ()
    unavailable: DataUnavailableError | None = None
    """Set when data the decision needs could not be obtained (the answer is then 412)."""
    orderer: Orderer = Orderer()
    """Who ordered and where, as far as the EHR's data tells (for the audit)."""

    @property
    def cards(self) -> list[Card]:
        return [card for _, card in self.assessed if card] + self.other_cards


class Engine:
    """Answers a validated call: the patient data it needs, the assessments, the cards."""

    def __init__(self, knowledge: Knowledge, settings: Settings, fhir: FhirClient) -> None:
        self.knowledge = knowledge
        self.settings = settings
        self.fhir = fhir
        self.relevant = relevance_filter(knowledge, UnplacedCodeSystems())

    async def _obtain(self, call: Call, keys: Sequence[str]) -> Obtained:
        authorization = call.request.fhirAuthorization
        access = FhirAccess(call.request.fhirServer, authorization.access_token if authorization else None,
                            self.settings.allow_unauthenticated_fhir)
        try:
            return await obtain(keys, call.request.prefetch, call.context.patientId, access, self.fhir,
                                self.settings.fhir_timeout_seconds, self.relevant)
        except DataUnavailable as exc:
            DATA_UNAVAILABLE.labels(exc.kind).inc()
            raise DataUnavailableError(Issue("incomplete", f"patient data needed for the decision could not be "
                                                           f"obtained: {exc}", f"prefetch.{exc.key}")) from None

    async def answer(self, call: Call, now: datetime) -> Answer:
        """The CPU-bound steps (reading the record, the pathway, the cards) run in a worker thread, so a
        large call never holds the event loop (and with it every other call and /healthz)."""
        if call.service.hook == "patient-view":
            return await self._patient_view(call, now)
        orders, classified = self._orders_in_scope(call)  # cheap: at most CDS_SPINE_MAX_DRAFT_ORDERS
        if not classified:
            return Answer()
        orderer = find_orderer(call.context.userId, call.context.encounterId, call.request.prefetch)
        try:
            obtained = await self._obtain(call, RECORD_KEYS)
        except DataUnavailableError as error:
            return Answer(orders=classified, unavailable=error, orderer=orderer)
        assessed = await run_in_threadpool(self._assess, call, classified, orders, obtained.resources, now)
        return Answer(assessed=assessed, orders=classified, data_read=True, fetched_keys=obtained.fetched_keys,
                      orderer=orderer)

    def _orders_in_scope(self, call: Call) -> tuple[list[DraftOrder], list[ClassifiedOrder]]:
        """All draft orders of the session, and the ESI and surgery orders in scope (order-select: selected)."""
        orders = read_draft_orders(call.draft_orders)
        in_scope = orders
        if isinstance(call.context, OrderSelectContext):
            selected = set(call.context.selections)
            in_scope = [order for order in orders if order.reference in selected]
        return orders, classify_all(in_scope, self.knowledge)

    def _assess(self, call: Call, classified: list[ClassifiedOrder], orders: list[DraftOrder],
                resources: Sequence[dict], now: datetime) -> list[tuple[Assessment, Card | None]]:
        record = build_record(resources, self.knowledge)
        options = self._options(call)
        return [(a, render_one(a, self.knowledge, options))
                for a in assess(classified, record, self.knowledge, now, session_orders=orders)]

    def _options(self, call: Call) -> CardOptions:
        return CardOptions(call.context.patientId, self.settings.info_card_when_met, self.settings.smart_app_url)

    def _summary(self, resources: Sequence[dict], now: datetime) -> PatientSummary | None:
        return summarize_patient(build_record(resources, self.knowledge), self.knowledge, now)

    async def _patient_view(self, call: Call, now: datetime) -> Answer:
        try:
            conditions = await self._obtain(call, CONDITION_KEYS)
            if await run_in_threadpool(self._summary, conditions.resources, now) is None:
                return Answer(data_read=True, fetched_keys=conditions.fetched_keys)
            rest = await self._obtain(call, [key for key in RECORD_KEYS if key not in CONDITION_KEYS])
        except DataUnavailableError as error:
            return Answer(unavailable=error)
        summary = await run_in_threadpool(self._summary, conditions.resources + rest.resources, now)
        return Answer(other_cards=render_patient_summary(summary, self.knowledge, self._options(call)),
                      data_read=True, fetched_keys=conditions.fetched_keys + rest.fetched_keys)
