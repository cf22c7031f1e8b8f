"""Regenerative injections (platelet-rich plasma, cell-based), the pathway's third step: after conservative
therapy and after an ESI in the region; an info card states the evidence and coverage position; a code for any
site is in the pathway only when the order is for the spine."""
from __future__ import annotations

import shutil
from datetime import UTC, datetime

from cli import ROOT
from support import (
    CPT,
    ICD10,
    ORDER_SIGN,
    PATIENT_VIEW,
    SNOMED,
    bundle,
    call,
    coded,
    condition,
    day,
    hook_request,
    procedure,
    pt_visits,
    radiculopathy,
)

from cds_spine.pathway import assess, classify_all, load_knowledge
from cds_spine.pathway.record import Code, DraftOrder, PatientRecord

LUMBAR_SPINE, KNEE = "122496007", "72696002"
INVESTIGATIONAL = ("PRP and cell-based spine injections are investigational: Medicare and most payers do not "
                   "cover them")


def prp(body_site: str | None = LUMBAR_SPINE, reason: tuple[str, str] | None = None, code: str = "0232T") -> dict:
    order = {"resourceType": "ServiceRequest", "id": "prp-1", "status": "draft", "intent": "order",
             "code": coded(CPT, code, "Injection, platelet rich plasma"), "subject": {"reference": "Patient/p1"}}
    if body_site:
        order["bodySite"] = [coded(SNOMED, body_site)]
    if reason:
        order["reasonCode"] = [coded(*reason)]
    return order


def signed(order: dict, esi_days_ago: int | None = 90, therapy: bool = True) -> dict:
    procedures = pt_visits(200, 130) if therapy else []
    if esi_days_ago is not None:
        procedures.append(procedure("64483", day(-esi_days_ago), rid="esi-earlier"))
    return hook_request("order-sign", orders=[order], procedures=procedures)


def test_before_any_esi_it_is_a_warning_with_the_coverage_position_beside_it(client):
    [card] = call(client, ORDER_SIGN, signed(prp(), esi_days_ago=None)).json()["cards"]
    assert (card["indicator"], card["summary"]) == (
        "warning", "No ESI on record before this lumbar regenerative injection: the pathway places regenerative "
                   "injections after ESI")
    assert f"- {INVESTIGATIONAL}" in card["detail"]
    assert card["source"]["topic"]["code"] == "regenerative-before-esi"


def test_after_therapy_and_an_esi_the_card_states_the_evidence_and_its_source(client):
    [card] = call(client, ORDER_SIGN, signed(prp())).json()["cards"]
    assert (card["indicator"], card["summary"]) == ("info", INVESTIGATIONAL)
    assert card["source"]["label"] == "CMS LCD L39060 Platelet Rich Plasma Injections for Non-Wound Injections"
    assert "Prior lumbar ESI: 1 in 12 months" in card["detail"]


def test_conservative_therapy_comes_first_as_for_an_esi(client):
    [card] = call(client, ORDER_SIGN, signed(prp(code="0627T", body_site=None), therapy=False)).json()["cards"]
    assert card["summary"] == ("No conservative therapy documented in the last 12 months before lumbar regenerative "
                               "injection; try physical therapy first")


def test_prp_into_a_knee_is_outside_the_pathway(client):
    knee = call(client, ORDER_SIGN, signed(prp(body_site=KNEE, reason=(ICD10, "M17.11")), esi_days_ago=None))
    assert knee.status_code == 200 and knee.json()["cards"] == []
    unsited = call(client, ORDER_SIGN, signed(prp(body_site=None), esi_days_ago=None))
    assert unsited.json()["cards"] == []


def test_a_spine_reason_places_an_any_site_code_in_the_pathway(client):
    [card] = call(client, ORDER_SIGN, signed(prp(body_site=None, reason=(ICD10, "M54.16")),
                                             esi_days_ago=None)).json()["cards"]
    assert card["source"]["topic"]["code"] == "regenerative-before-esi"


def test_a_condition_the_order_references_places_it_in_the_pathway_once_the_record_is_read(client):
    """An EHR that names the order's reason by a Condition of the record (reasonReference), not by a code:
    the spine radiculopathy places PRP in the pathway; a knee's osteoarthritis keeps it out."""
    spine = {**prp(body_site=None), "reasonReference": [{"reference": "Condition/cond-M54.16"}]}
    [card] = call(client, ORDER_SIGN, signed(spine, esi_days_ago=None)).json()["cards"]
    assert card["source"]["topic"]["code"] == "regenerative-before-esi" and "lumbar" in card["summary"]
    knee = {**prp(body_site=None), "reasonReference": [{"reference": "urn:uuid:cond-M17.11"}]}
    request = signed(knee, esi_days_ago=None)
    request["prefetch"]["conditions"]["entry"].append({"resource": condition("M17.11")})
    assert call(client, ORDER_SIGN, request).json()["cards"] == []


def test_an_esi_in_another_region_is_not_the_step_before(client):
    cervical = signed(prp(), esi_days_ago=None)
    cervical["prefetch"]["procedures"]["entry"].append(
        {"resource": procedure("62321", day(-90), rid="esi-neck")})
    [card] = call(client, ORDER_SIGN, cervical).json()["cards"]
    assert card["source"]["topic"]["code"] == "regenerative-before-esi"


def test_a_parameter_lets_a_site_drop_the_esi_first_requirement(tmp_path):
    cards = tmp_path / "cards"
    shutil.copytree(ROOT / "cards", cards)
    pathway = cards / "pathway.yaml"
    pathway.write_text(pathway.read_text().replace("prior_esi_required: true", "prior_esi_required: false"))
    knowledge = load_knowledge(cards)
    order = DraftOrder("ServiceRequest/prp-1", (Code(CPT, "0627T"),), None, "draft")
    [assessment] = assess(classify_all([order], knowledge), PatientRecord(), knowledge, datetime.now(UTC))
    assert [f.code for f in assessment.findings if f.leads_a_card] == ["conservative-missing",
                                                                        "regenerative-investigational",
                                                                        "imaging-undocumented"]


def test_patient_view_states_all_four_steps(client):
    before = hook_request("patient-view", procedures=pt_visits(60, 10))
    [card] = call(client, PATIENT_VIEW, before).json()["cards"]
    assert "- ESI: criteria met" in card["detail"]
    assert "- Regenerative injection: after an ESI (none on record)" in card["detail"]
    after = hook_request("patient-view", procedures=pt_visits(60, 10) + [procedure("64483", day(-30))],
                         conditions=[radiculopathy()])
    [card] = call(client, PATIENT_VIEW, after).json()["cards"]
    # Issue 33, point 7: never "criteria met", which reads as a next step: it is investigational (LCD L39060)
    assert "- Regenerative injection: investigational; Medicare and most payers do not cover it" in card["detail"]
    assert "Regenerative injection: criteria met" not in card["detail"]


def test_an_intradiscal_cell_product_for_discogenic_pain_is_not_told_to_wait_for_an_esi(client):
    """Issue 33, point 7: 0627T treats discogenic (axial) pain, which an ESI does not treat: the card says it is
    investigational, never "no ESI on record before this ..."."""
    disc = {**prp(body_site=None, code="0627T"), "id": "disc-1"}
    body = signed(disc, esi_days_ago=None)
    body["prefetch"]["conditions"] = bundle(condition("M51.36"))  # lumbar disc degeneration: axial pain
    [card] = call(client, ORDER_SIGN, body).json()["cards"]
    assert card["source"]["topic"]["code"] == "regenerative-investigational"
    assert "No ESI on record" not in card["summary"] + card["detail"]
    prp_card = call(client, ORDER_SIGN, signed(prp(), esi_days_ago=None)).json()["cards"][0]
    assert prp_card["source"]["topic"]["code"] == "regenerative-before-esi"  # PRP still waits for one
