"""Properties of the pathway over generated records (hypothesis): monotone in conservative evidence,
red flags always waive, orders outside the trigger value sets never get a card, the order of resources
never matters, and every card keeps the CDS Hooks rules whatever the record."""
from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import CPT, bundle, coded, condition, medication_statement, problems_in_response, procedure

from cds_spine.cdshooks.cards import CardOptions, render_orders
from cds_spine.cdshooks.models import CdsResponse
from cds_spine.fhir.draft_orders import read_draft_orders
from cds_spine.fhir.record import build_record
from cds_spine.fhir.relevance import relevance_filter
from cds_spine.pathway import Decision, assess, classify_all, load_knowledge, summarize_patient
from cds_spine.pathway.record import Code
from cds_spine.pathway.standing import Criteria
from cds_spine.settings import Settings

KNOWLEDGE = load_knowledge(Settings().knowledge_dir())
KEEP = relevance_filter(KNOWLEDGE)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
VALUESETS = Settings().knowledge_dir() / "valuesets"
PROPERTY = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def codes(*valuesets: str) -> list[tuple[str, str]]:
    found = []
    for name in valuesets:
        document = json.loads((VALUESETS / f"{name}.json").read_text())
        found += [(c["system"], c["code"]) for c in document["expansion"]["contains"]]
    return sorted(found)


RED_FLAGS = codes(*(flag.valueset for flag in KNOWLEDGE.config.diagnoses.red_flags))
DIAGNOSES = codes("qualifying-diagnosis", "axial-pain") + RED_FLAGS[:20] + [
    ("http://hl7.org/fhir/sid/icd-10-cm", "J06.9"), ("http://snomed.info/sct", "44054006")]
MODALITIES = codes(*(m.valueset for m in KNOWLEDGE.config.conservative.modalities))
NSAIDS = codes("medication-nsaid")
TRIGGERS = codes("esi-order", "spine-surgery-order")
TRIGGER_CODES = {code for _, code in TRIGGERS}


def day(days_ago: int) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


@st.composite
def conditions(draw) -> dict:
    system, code = draw(st.sampled_from(DIAGNOSES))
    status = draw(st.sampled_from(["active", "recurrence", "resolved", None]))
    return condition(code, system=system, status=status, rid=f"c-{draw(st.integers(0, 10**9))}",
                     onsetDateTime=day(draw(st.integers(0, 900))))


@st.composite
def therapy_visits(draw) -> dict:
    system, code = draw(st.sampled_from(MODALITIES))
    return procedure(code, day(draw(st.integers(0, 500))), system=system,
                     status=draw(st.sampled_from(["completed", "completed", "in-progress", "not-done"])),
                     rid=f"p-{draw(st.integers(0, 10**9))}")


@st.composite
def nsaid_courses(draw) -> dict:
    _, code = draw(st.sampled_from(NSAIDS))
    start = draw(st.integers(0, 500))
    end = max(0, start - draw(st.integers(1, 200)))
    return medication_statement(code, day(start), day(end), rid=f"m-{draw(st.integers(0, 10**9))}")


@st.composite
def orders(draw) -> list[dict]:
    picked = draw(st.lists(st.sampled_from(TRIGGERS), min_size=1, max_size=3))
    return [{"resourceType": "ServiceRequest", "id": f"order-{i}", "status": "draft", "intent": "order",
             "code": coded(system, code, f"order {code}"), "subject": {"reference": "Patient/p1"}}
            for i, (system, code) in enumerate(picked)]


records = st.builds(lambda c, p, m: c + p + m, st.lists(conditions(), max_size=4),
                    st.lists(therapy_visits(), max_size=12), st.lists(nsaid_courses(), max_size=3))


def assessed(resources: list[dict], drafts: list[dict]):
    record = build_record([r for r in resources if KEEP(r)], KNOWLEDGE)
    session = read_draft_orders(drafts)
    return assess(classify_all(session, KNOWLEDGE), record, KNOWLEDGE, NOW, session_orders=session)


def decisions(resources: list[dict], drafts: list[dict]) -> list[Decision]:
    return [a.decision for a in assessed(resources, drafts)]


RANK = {Decision.NOT_MET: 0, Decision.MET: 1, Decision.EXEMPT: 1, Decision.STOPPED: 1}


@PROPERTY
@given(records, st.lists(therapy_visits(), min_size=1, max_size=10), st.lists(nsaid_courses(), max_size=2), orders())
def test_more_conservative_evidence_never_turns_met_into_not_met(record, visits, courses, drafts):
    before = decisions(record, drafts)
    after = decisions(record + visits + courses, drafts)
    assert all(RANK[b] <= RANK[a] for b, a in zip(before, after, strict=True)), (before, after)


@PROPERTY
@given(records, st.sampled_from(RED_FLAGS), orders())
def test_an_active_red_flag_stops_every_injection_and_waives_every_surgery(record, flag, drafts):
    """Whatever else the record holds: an injection's card leads with the red flag (critical), surgery waits for
    nothing."""
    system, code = flag
    red_flag = condition(code, system=system, status="active", rid="red-flag", onsetDateTime=day(3))
    for assessment in assessed(record + [red_flag], drafts):
        if assessment.order.category == "surgery":
            assert assessment.decision is Decision.EXEMPT
        else:
            assert assessment.decision is Decision.STOPPED
            assert (assessment.lead.code, assessment.lead.severity) == ("red-flag-injection", "critical")


@PROPERTY
@given(records, st.lists(st.tuples(st.sampled_from([CPT, "http://snomed.info/sct", "urn:local"]),
                                   st.from_regex(r"[0-9]{5}", fullmatch=True)), min_size=1, max_size=4))
def test_orders_outside_the_trigger_value_sets_never_get_a_card(record, picked):
    drafts = [{"resourceType": "ServiceRequest", "id": f"o{i}", "status": "draft", "intent": "order",
               "code": coded(system, code), "subject": {"reference": "Patient/p1"}}
              for i, (system, code) in enumerate(picked) if code not in TRIGGER_CODES]
    assert assessed(record, drafts) == []


@PROPERTY
@given(records, orders(), st.randoms(use_true_random=False))
def test_the_order_of_resources_never_changes_the_decision(record, drafts, rng: random.Random):
    shuffled = list(record)
    rng.shuffle(shuffled)
    before = [(a.decision, a.history.days, [f.code for f in a.findings]) for a in assessed(record, drafts)]
    after = [(a.decision, a.history.days, [f.code for f in a.findings]) for a in assessed(shuffled, drafts)]
    assert before == after


@PROPERTY
@given(records, orders())
def test_every_card_keeps_the_cds_hooks_rules(record, drafts):
    options = CardOptions("p1", True, None)
    cards = [card for card in render_orders(assessed(record, drafts), KNOWLEDGE, options) if card]
    response = CdsResponse(cards=cards).wire()
    request = {"context": {"draftOrders": bundle(*drafts, bundle_type="collection")}}
    assert problems_in_response(response, request) == []
    for card in response["cards"]:
        assert len(card["summary"]) < 140


ESI_SESSIONS = codes("esi-order")


@st.composite
def prior_esis(draw) -> dict:
    _, code = draw(st.sampled_from(ESI_SESSIONS))
    return procedure(code, day(draw(st.integers(1, 400))), rid=f"e-{draw(st.integers(0, 10**9))}")


@st.composite
def pain_scores(draw) -> dict:
    return {"resourceType": "Observation", "id": f"o-{draw(st.integers(0, 10**9))}", "status": "final",
            "code": coded("http://loinc.org", "72514-3"), "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": f"{day(draw(st.integers(0, 300)))}T10:00:00Z",
            "valueQuantity": {"value": draw(st.integers(0, 10))}}


def guided_esi_orders() -> list[dict]:
    """One draft of every image-guided ESI code of the value set."""
    guided = [(system, code) for system, code in ESI_SESSIONS if (found := KNOWLEDGE.find(
        [Code(system, code)], "esi-order")) and found.attributes.get("guidance") == "imaging"]
    return [{"resourceType": "ServiceRequest", "id": f"esi-{code}", "status": "draft", "intent": "order",
             "code": coded(system, code), "subject": {"reference": "Patient/p1"}} for system, code in guided]


GUIDED_ESIS = guided_esi_orders()


@PROPERTY
@given(records, st.lists(prior_esis(), max_size=5), st.lists(pain_scores(), max_size=6))
def test_patient_view_never_says_criteria_met_where_the_esi_card_would_warn(record, esis, scores):
    """Issue 33: for any record, an ESI patient-view calls "criteria met" gets no warning or critical card in any
    region of a radicular or stenosis diagnosis (the anticoagulant hold, a line of advice, is not a criterion)."""
    resources = record + esis + scores
    built = build_record([r for r in resources if KEEP(r)], KNOWLEDGE)
    summary = summarize_patient(built, KNOWLEDGE, NOW)
    if summary is None or summary.esi is not Criteria.MET:
        return
    for assessment in assessed(resources, GUIDED_ESIS):
        if any(f.code == "no-qualifying-diagnosis" for f in assessment.findings):
            continue
        warned = [f.code for f in assessment.findings if f.severity in ("warning", "critical")
                  and not f.code.startswith("anticoagulant")]
        assert not warned, (assessment.order.code.code, warned)
