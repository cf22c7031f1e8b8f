"""A validated call answered: the patient data it needs, the assessments, the cards. The protocol side of
the seam with the pathway."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import DataUnavailableError
from ..fhir.client import FhirClient
from ..fhir.draft_orders import read_draft_orders
from ..fhir.people import Orderer, find_orderer
from ..fhir.prefetch import (
    CONDITION_KEYS,
    RECORD_KEYS,
    FhirAccess,
    Obtained,
    PrefetchRead,
    obtain,
    optional_queries,
    read_prefetch,
)
from ..fhir.record import build_record
from ..fhir.relevance import relevance_filter
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
from ..pathway.orders import awaits_its_reason
from ..settings import EhrProfile
from .annotations import order_annotations
from .calls import Call, Caller
from .cards import CardOptions, render_orders, render_patient_summary
from .models import Action, Card, OrderSelectContext
from .offload import cpu_work


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
    system_actions: list[Action] = field(default_factory=list)
    """Order annotation (CDS_SPINE_ANNOTATE_ORDERS): the assessment recorded on each draft order."""

    @property
    def cards(self) -> list[Card]:
        return [card for _, card in self.assessed if card] + self.other_cards


class CallAnswerer:
    """Answers a validated call: the patient data it needs, the assessments, the cards."""

    def __init__(self, knowledge: Knowledge, fhir: FhirClient, *, fhir_timeout_seconds: float,
                 allow_unauthenticated_fhir: bool, info_card_when_met: bool, smart_launch_url: str | None,
                 epic_referral_preference_item: str | None = None, annotate_orders: bool = False) -> None:
        self.knowledge = knowledge
        self.fhir = fhir
        self.fhir_timeout_seconds = fhir_timeout_seconds
        self.allow_unauthenticated_fhir = allow_unauthenticated_fhir
        self.info_card_when_met = info_card_when_met
        self.smart_launch_url = smart_launch_url
        self.epic_referral_preference_item = epic_referral_preference_item
        self.annotate_orders = annotate_orders
        self.relevant = relevance_filter(knowledge, UnplacedCodeSystems())
        self.optional = optional_queries(knowledge)

    async def _obtain(self, call: Call, caller: Caller, read: PrefetchRead) -> Obtained:
        authorization = call.request.fhirAuthorization
        server = call.request.fhirServer
        access = FhirAccess(server, authorization.access_token if authorization else None,
                            self.allow_unauthenticated_fhir, trusted=server is None or caller.trusts(server))
        try:
            return await obtain(read, call.context.patientId, access, self.fhir, self.fhir_timeout_seconds, self.relevant)
        except DataUnavailableError as error:
            DATA_UNAVAILABLE.labels(error.kind).inc()
            raise

    def answer_from_prefetch(self, call: Call, now: datetime, caller: Caller) -> Answer | Unanswered:
        """The answer when prefetch holds all the call reads (most calls), in one synchronous step: it runs where the
        call's CPU work runs, with the parsing (offload.py). Else what it read of prefetch and what it needs from
        the FHIR server, for `answer` to complete."""
        reads: _Reads = {}
        try:
            return self._answer(call, now, self._options(call, caller.profile), _Reader(call, self, reads))
        except _NeedsServer as needs:
            return Unanswered(reads, needs.missing)

    async def answer(self, call: Call, now: datetime, caller: Caller, inline: bool,
                     unanswered: Unanswered | None = None) -> Answer:
        """The answer, the FHIR server completing what prefetch lacks (`unanswered`: what answer_from_prefetch read
        and found missing): each time the call needs what prefetch does not hold, it is obtained, and the call
        answered again with it (at most twice: patient-view reads the diagnoses first, the rest only when they call
        for a summary). Prefetch is read once, in the CPU work, which runs on the event loop for a small call
        (`inline`), in a worker thread for a large one (offload.py)."""
        options = self._options(call, caller.profile)
        reads: _Reads = unanswered.reads if unanswered else {}
        missing = unanswered.missing if unanswered else None
        while True:
            if missing is not None:
                try:
                    reads[missing.need] = await self._obtain(call, caller, missing.read)
                except DataUnavailableError as error:
                    reads[missing.need] = error
            try:
                return await cpu_work(inline, lambda: self._answer(call, now, options, _Reader(call, self, reads)))
            except _NeedsServer as needs:
                missing = needs.missing

    def _answer(self, call: Call, now: datetime, options: CardOptions, read: _Reader) -> Answer:
        if call.service.hook == "patient-view":
            return self._patient_view(now, options, read)
        orders, in_scope = self._orders_in_scope(call)  # cheap: at most CDS_SPINE_MAX_DRAFT_ORDERS
        classified = classify_all(in_scope, self.knowledge)
        if not classified and not any(awaits_its_reason(order, self.knowledge) for order in in_scope):
            return Answer()
        orderer = find_orderer(call.context.userId, call.context.encounterId, call.request.prefetch)
        try:
            obtained = read(RECORD_KEYS, with_optional=True)
        except DataUnavailableError as error:
            return Answer(orders=classified, unavailable=error, orderer=orderer)
        classified, assessed = self._assess(in_scope, orders, obtained.resources, now, options)
        actions = order_annotations([a for a, _ in assessed], call.draft_orders, self.knowledge,
                              self.knowledge.config.card.annotation_description) if self.annotate_orders else []
        return Answer(assessed=assessed, orders=classified, data_read=True, fetched_keys=obtained.fetched_keys,
                      orderer=orderer, system_actions=actions)

    def _orders_in_scope(self, call: Call) -> tuple[list[DraftOrder], list[DraftOrder]]:
        """All draft orders of the session, and those in scope (order-select: the selected ones)."""
        orders = read_draft_orders(call.draft_orders)
        if isinstance(call.context, OrderSelectContext):
            selected = set(call.context.selections)
            return orders, [order for order in orders if order.reference in selected]
        return orders, orders

    def _assess(self, in_scope: list[DraftOrder], orders: list[DraftOrder], resources: Sequence[dict[str, Any]],
                now: datetime, options: CardOptions) -> tuple[list[ClassifiedOrder], list[tuple[Assessment, Card | None]]]:
        """The orders in the pathway, classified again with the record (an injection whose spine link is a
        Condition it references), and each one's assessment and card."""
        record = build_record(resources, self.knowledge)
        classified = classify_all(in_scope, self.knowledge, record)
        assessments = assess(classified, record, self.knowledge, now, session_orders=orders)
        return classified, list(zip(assessments, render_orders(assessments, self.knowledge, options), strict=True))

    def _options(self, call: Call, profile: EhrProfile) -> CardOptions:
        return CardOptions(call.context.patientId, self.info_card_when_met, self.smart_launch_url, call.service.hook, profile,
                           self.epic_referral_preference_item)

    def _summary(self, resources: Sequence[dict[str, Any]], now: datetime) -> PatientSummary | None:
        return summarize_patient(build_record(resources, self.knowledge), self.knowledge, now)

    def _patient_view(self, now: datetime, options: CardOptions, read: _Reader) -> Answer:
        try:
            conditions = read(CONDITION_KEYS, with_optional=False)
            if self._summary(conditions.resources, now) is None:
                return Answer(data_read=True, fetched_keys=conditions.fetched_keys)
            rest = read(tuple(key for key in RECORD_KEYS if key not in CONDITION_KEYS), with_optional=True)
        except DataUnavailableError as error:
            return Answer(unavailable=error)
        summary = self._summary(conditions.resources + rest.resources, now)
        return Answer(other_cards=render_patient_summary(summary, self.knowledge, options),
                      data_read=True, fetched_keys=conditions.fetched_keys + rest.fetched_keys)


_Need = tuple[tuple[str, ...], bool]
"""What a step of a call reads: the prefetch keys, and whether the optional ones (observations, imaging) with them."""


@dataclass(frozen=True)
class _Missing:
    need: _Need
    read: PrefetchRead
    """What prefetch holds of it (read once): `obtain` completes it."""


_Reads = dict[_Need, Obtained | DataUnavailableError]
"""What each step of a call has read: from prefetch alone or completed by the FHIR server, or why it could not be."""


@dataclass(frozen=True)
class Unanswered:
    """A call that reads what prefetch does not hold: what it has read, and what the FHIR server must complete."""

    reads: _Reads
    missing: _Missing


class _NeedsServer(Exception):
    """The call reads what prefetch does not hold (`missing`): the FHIR server must complete it."""

    def __init__(self, missing: _Missing) -> None:
        super().__init__(missing.need)
        self.missing = missing


class _Reader:
    """What a call reads: what it read before (`reads`: from prefetch, or completed by the FHIR server, or why it
    could not be), else prefetch, read once."""

    def __init__(self, call: Call, answerer: CallAnswerer, reads: _Reads):
        self.call = call
        self.answerer = answerer
        self.reads = reads

    def __call__(self, keys: tuple[str, ...], with_optional: bool) -> Obtained:
        need = (keys, with_optional)
        found = self.reads.get(need)
        if found is None:
            read = read_prefetch(keys, self.call.request.prefetch, self.answerer.relevant,
                                 self.answerer.optional if with_optional else None)
            found = read.complete()
            if found is None:
                raise _NeedsServer(_Missing(need, read))
            self.reads[need] = found
        if isinstance(found, DataUnavailableError):
            raise found
        return found
