"""Issue 33: therapy counted as a spine clinician counts it, over HTTP. Days nobody was treated are not therapy
(two 7-day prescriptions eleven months apart are two weeks), a GP system's repeat authorisation is permission to
prescribe and only its issues are drugs supplied, and ESIs are counted by session (a day and a region), their
add-on and bilateral lines included."""
from __future__ import annotations

import gzip
import json

from real_records import REAL_DATA
from support import (
    ORDER_SIGN,
    PATIENT_VIEW,
    RXNORM,
    audit_store,
    baseline_scores,
    call,
    coded,
    condition,
    day,
    esi_order,
    hook_request,
    procedure,
    pt_visits,
    radiculopathy,
)

from cds_spine.audit import tables

IBUPROFEN = ("197806", "Ibuprofen 600 MG Oral Tablet")


def prescription(rid: str, days_ago: int, supply_days: int | None = 7, status: str = "completed",
                 intent: str = "order", validity_end: str | None = None) -> dict:
    dispense: dict = {}
    if supply_days is not None:
        dispense["expectedSupplyDuration"] = {"value": supply_days, "unit": "days", "code": "d",
                                              "system": "http://unitsofmeasure.org"}
    if validity_end is not None:
        dispense["validityPeriod"] = {"start": day(-days_ago), "end": validity_end}
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": intent,
            "authoredOn": day(-days_ago), "medicationCodeableConcept": coded(RXNORM, *IBUPROFEN),
            "subject": {"reference": "Patient/p1"}, "dispenseRequest": dispense}


def cards(client, **prefetch) -> list[dict]:
    """The order card of a lumbar ESI, on a record with its baseline scores (what is counted here is therapy)."""
    prefetch.setdefault("observations", baseline_scores())
    response = call(client, ORDER_SIGN, hook_request("order-sign", **prefetch))
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def summary(client, **prefetch) -> str:
    request = hook_request("patient-view", **prefetch)
    request["context"] = {"userId": "Practitioner/1", "patientId": "p1"}
    response = call(client, PATIENT_VIEW, request)
    assert response.status_code == 200, response.text
    return response.json()["cards"][0]["summary"]


def test_two_short_prescriptions_months_apart_are_two_short_courses(make_client):
    """Point 1: each 7-day supply is a week of treatment; the eleven months between them are not therapy."""
    client = make_client(info_card_when_met=True)
    two = {"medication_requests": [prescription("first", 340), prescription("second", 16)]}
    [card] = cards(client, **two)
    assert card["indicator"] == "warning"
    assert card["summary"] == "Only 7 days of conservative therapy documented; 28 days recommended before lumbar ESI"
    assert summary(client, **two).startswith("Spine pathway: 7 days of conservative therapy; ESI needs 21 more days")


def test_refills_within_a_month_of_the_last_supply_are_one_course(make_client):
    client = make_client(info_card_when_met=True)
    refilled = {"medication_requests": [prescription(f"rx-{n}", 16 + 30 * n, supply_days=28) for n in range(3)]}
    [card] = cards(client, **refilled)
    assert card["summary"].startswith("77 days of conservative therapy documented; criteria for lumbar ESI are met")


def test_prescriptions_with_no_stated_length_keep_the_yearly_renewal_reading(make_client):
    """Where the record gives no end, a chronic drug renewed at yearly visits is still one course."""
    client = make_client(info_card_when_met=True)
    renewed = {"medication_requests": [prescription("a", 340, supply_days=None, status="stopped"),
                                       prescription("b", 16, supply_days=None, status="active")]}
    [card] = cards(client, **renewed)
    assert card["summary"].startswith("341 days of conservative therapy documented; criteria for lumbar ESI are met")


def test_a_gp_authorisation_is_permission_to_prescribe_and_its_issues_are_the_supply(make_client):
    """Point 1 and "Records from general practice": a stopped repeat authorisation valid for years (intent plan)
    reads as no drug (it read as 366 days); its one 28-day issue (intent order) reads as 28 days."""
    client = make_client(info_card_when_met=True)
    authorisation = prescription("authorisation", 300, supply_days=None, status="stopped", intent="plan",
                                 validity_end=day(400))
    issue = prescription("issue", 40, supply_days=28)
    [card] = cards(client, medication_requests=[authorisation, issue])
    assert card["summary"].startswith("28 days of conservative therapy documented; criteria for lumbar ESI are met")
    [alone] = cards(client, medication_requests=[authorisation])
    assert alone["summary"].startswith("No conservative therapy documented")


def test_the_gp_systems_own_export_counts_issues_not_authorisations():
    """The English GP export: every authorisation (intent plan) has its issues; none is read as a drug taken."""
    from cds_spine.fhir.record import build_record
    from cds_spine.pathway import load_knowledge
    from cds_spine.pathway.evidence import Scope, conservative_history
    from cds_spine.settings import Settings
    knowledge = load_knowledge(Settings().knowledge_dir())
    folder = REAL_DATA / "gp-connect-emis"
    plans = 0
    for path in sorted(folder.glob("*.json.gz")):
        resources = [entry["resource"] for entry in json.loads(gzip.decompress(path.read_bytes()))["entry"]]
        plans += sum(r.get("resourceType") == "MedicationRequest" and r.get("intent") == "plan" for r in resources)
        record = build_record(resources, knowledge)
        taken = {m.reference for m in record.medications if m.intent == "plan"}
        for today in {m.start for m in record.medications if m.start}:
            history = conservative_history(record, knowledge, today, Scope(frozenset(), 28, False))
            assert not taken & {r for item in history.evidence for r in item.references}
    assert plans  # the export has authorisations to leave out


def two_line_session(days_ago: int) -> list[dict]:
    """One lumbar transforaminal session at two levels: 64483 and its add-on 64484, the same day."""
    return [procedure("64483", day(-days_ago), rid=f"tf-{days_ago}"),
            procedure("64484", day(-days_ago), rid=f"tf-addon-{days_ago}")]


def test_esis_are_counted_by_session_not_by_line(make_client):
    """Point 4: three two-level sessions in a year are three ESIs (the fourth is allowed), not six."""
    client = make_client(info_card_when_met=True)
    sessions = [line for days_ago in (300, 200, 100) for line in two_line_session(days_ago)]
    [card] = cards(client, conditions=[radiculopathy()], procedures=pt_visits(330, 240) + sessions)
    assert "ESI number" not in card["summary"]
    assert "Prior lumbar ESI: 3 in 12 months" in card["detail"]
    fourth = [line for days_ago in (330, 300, 200, 100) for line in two_line_session(days_ago)]
    [limit] = cards(client, conditions=[radiculopathy()], procedures=pt_visits(360, 300) + fourth)
    assert limit["summary"] == "This would be lumbar ESI number 5 in 12 months; at most 4 per region are recommended"


def test_sessions_in_two_regions_on_one_day_are_one_in_each(make_client):
    """A lumbar and a cervical transforaminal ESI (64479) the same day: one lumbar session."""
    client = make_client(info_card_when_met=True)
    same_day = [procedure("64483", day(-100), rid="lumbar"), procedure("64479", day(-100), rid="cervical")]
    [card] = cards(client, conditions=[radiculopathy()], procedures=pt_visits(200, 120) + same_day)
    assert "Prior lumbar ESI: 1 in 12 months" in card["detail"]


def test_therapy_long_before_the_problem_began_treated_something_else(make_client):
    """Point 3: physical therapy that ended months before the radiculopathy was first recorded does not count,
    and the card says why; therapy from a month before it does."""
    client = make_client(info_card_when_met=True)
    late_radiculopathy = condition("M54.16", onsetDateTime=day(-60), rid="radic")
    [card] = cards(client, conditions=[late_radiculopathy], procedures=pt_visits(300, 220))
    assert card["summary"].startswith("No conservative therapy documented")
    assert f"before the spine problem was first recorded ({day(-60)})" in card["detail"]
    # weekly visits from 120 days ago: those from 90 days ago (a month before the problem) count, 85 to 36
    [counted] = cards(client, conditions=[late_radiculopathy], procedures=pt_visits(120, 36))
    assert counted["summary"].startswith("8 physical therapy visits over 7 weeks documented; criteria for lumbar ESI "
                                         "are met")  # 50 days, counted as a clinician counts them


def test_an_esi_needs_four_weeks_of_symptoms(make_client):
    """Point 3: a radiculopathy first recorded ten days ago, with a month of naproxen before it, is not yet an ESI
    (it was "criteria met"); patient-view says when it will be."""
    client = make_client(info_card_when_met=True)
    recent = {"conditions": [condition("M54.16", onsetDateTime=day(-10), rid="radic")],
              "medication_requests": [prescription("nsaid", 38, supply_days=60, status="active")]}
    [card] = cards(client, **recent)
    assert card["indicator"] == "warning"
    assert card["summary"] == ("M54.16 first recorded 10 days ago: an ESI needs 28 days of symptoms (LCD L39240)")
    assert summary(client, **recent).startswith(f"Spine pathway: 39 days of conservative therapy; ESI from "
                                                f"{day(18)} (4 weeks of symptoms)")


def test_patient_view_says_what_the_lumbar_esi_card_says(make_client):
    """Point 5: cervical physical therapy and a lumbar radiculopathy: the lumbar ESI card says no therapy, and
    patient-view no longer says "ESI: criteria met"; after a poor response to the last ESI it says so too."""
    client = make_client(info_card_when_met=True)
    neck_pt = [{**visit, "bodySite": [coded("http://snomed.info/sct", "122494005", "Cervical spine structure")]}
               for visit in pt_visits(90, 20)]
    elsewhere = {"conditions": [radiculopathy()], "procedures": neck_pt}
    [card] = cards(client, **elsewhere)
    assert card["summary"].startswith("No conservative therapy documented")
    assert summary(client, **elsewhere).startswith("Spine pathway: 0 days of conservative therapy; ESI needs 28 "
                                                   "more days")
    from test_scores import PAIN, observation
    poor = {"conditions": [radiculopathy()], "procedures": pt_visits(150, 80) + [procedure("64483", day(-60), rid="last")],
            "observations": [observation(PAIN, 62, 7), observation(PAIN, 30, 6)]}
    [warned] = cards(client, **poor)
    assert warned["summary"].startswith("Last lumbar ESI: pain 7/10")
    assert "ESI to review: too little relief last time" in summary(client, **poor)


def test_the_lines_of_one_order_and_orders_sharing_a_finding_get_one_card(client):
    """Issue 33, point 4: an ESI and its add-on level, or a decompression with its fusion, are one decision for the
    clinician: one card that names every order and offers to replace them all; the audit keeps each order."""
    esi_lines = [esi_order("esi-1", code="64483"), esi_order("esi-2", code="64484")]
    [card] = cards(client, orders=esi_lines, procedures=pt_visits(20, 6))
    assert card["summary"] == ("Only 3 physical therapy visits over 2 weeks documented; 28 days recommended before "
                               "lumbar ESI")
    [replace, _] = card["suggestions"]
    assert [a["resourceId"] for a in replace["actions"] if a["type"] == "delete"] == ["ServiceRequest/esi-1",
                                                                                     "ServiceRequest/esi-2"]
    surgery = [esi_order("decompression", code="63047"), esi_order("fusion", code="22612")]
    [card] = cards(client, orders=surgery, conditions=[radiculopathy(), condition("M43.16")])  # spondylolisthesis
    assert card["summary"] == ("No conservative therapy documented in the last 12 months before lumbar decompression "
                               "and lumbar fusion; try physical therapy first")
    with audit_store(client).engine.connect() as connection:
        recorded = connection.execute(tables.assessments.select().order_by(tables.assessments.c.id.desc()).limit(2)).all()
    assert len(recorded) == 2 and {row.category for row in recorded} == {"surgery"}
