"""Patient-view (issue 24): the card on opening the chart agrees with the order card a clinician would get
next. It applies every order-independent rule per region (ESIs against the limit and interval, each one
listed), leads with a red flag as a warning that says to evaluate urgently, and says what is missing.
On the worked scenarios and on records others wrote."""
from __future__ import annotations

import json

import pytest
from real_records import evaluate, mimic_patient, request
from support import ORDER_SIGN, PATIENT_VIEW, SCENARIOS, call, condition, hook_request, scenario_build


def both_cards(client, name: str) -> tuple[dict, dict]:
    """(patient-view card, order-sign card) for one scenario's record."""
    scenario = json.loads((SCENARIOS / f"{name}.json").read_text())
    discovery = client.get("/cds-services").json()
    cards = {}
    for hook, service in (("patient-view", PATIENT_VIEW), ("order-sign", ORDER_SIGN)):
        story = {**scenario, "hook": hook}
        body = scenario_build.build_request(story, scenario_build.keys_from_discovery(discovery, hook))
        [cards[hook]] = call(client, service, body).json()["cards"]
    return cards["patient-view"], cards["order-sign"]


def test_a_fifth_esi_in_a_year_is_not_called_met_on_opening_the_chart(client):
    view, order_card = both_cards(client, "p05-esi-fifth-in-a-year")
    assert order_card["summary"].startswith("This would be lumbar ESI number 5")
    assert "ESI at the lumbar limit" in view["summary"] and "criteria met" not in view["summary"].split(";")[1]
    [line] = [line for line in view["detail"].splitlines() if "Prior lumbar ESIs" in line]
    assert line.startswith("- Prior lumbar ESIs: 4 in 12 months (") and line.count(", 20") == 3
    assert "at most 4 per region, at least 14 days apart" in line


def test_cauda_equina_leads_as_a_warning_to_evaluate_urgently(client):
    view, order_card = both_cards(client, "p04-esi-cauda-equina")
    assert order_card["summary"] == "Red flag on record (Cauda equina syndrome): no lumbar ESI before urgent evaluation"
    assert order_card["indicator"] == "critical"
    assert view["indicator"] == "warning" and "evaluate urgently" in view["summary"]
    assert "waived" not in view["summary"] and view["detail"].startswith("Red flag: Cauda equina syndrome")
    assert "- ESI: not before red-flag evaluation" in view["detail"]
    assert "- Regenerative injection: not before red-flag evaluation" in view["detail"]
    assert "- Surgery: no therapy needed first (red flag)" in view["detail"]


def test_what_is_missing_is_said_in_days_of_therapy(client):
    view, order_card = both_cards(client, "p03-esi-short-nsaid")
    assert order_card["summary"].startswith("Only 11 days of conservative therapy documented")
    assert view["indicator"] == "info" and "ESI needs 17 more days" in view["summary"]
    assert "**Missing for ESI:** 17 more days of conservative therapy (28 in all)" in view["detail"]
    assert "**Missing for Surgery:** 31 more days of conservative therapy (42 in all)" in view["detail"]


def test_a_red_flag_in_a_hospital_record_leads_the_chart(tmp_path):
    pid, resources = mimic_patient("a977f4b6")  # ICD-9 805.4, a lumbar vertebral fracture at an admission
    [card] = evaluate(tmp_path, request(pid, resources, hook="patient-view"), "2141-08-20")
    assert card["indicator"] == "warning"
    assert card["summary"].startswith("Red flag on record (Closed fracture of lumbar vertebra")


def test_a_hospital_stenosis_patient_is_told_what_is_missing(tmp_path):
    pid, resources = mimic_patient("7d61fb4e")  # ICD-9 724.02, nothing of conservative therapy on record
    [card] = evaluate(tmp_path, request(pid, resources, hook="patient-view"), "2117-05-01")
    # Issue 33: a history of cancer and no spine imaging: the lumbar ESI card leads with "MRI or CT first", and
    # patient-view says the same
    assert card["summary"] == ("Spine pathway: 0 days of conservative therapy; ESI after MRI or CT of the spine; "
                               "surgery needs 42 more days")


@pytest.mark.parametrize("code", ["M45.6", "L40.53"])
def test_inflammatory_spine_disease_is_a_spine_diagnosis(client, code):
    """Issue 33: ankylosing or psoriatic spondylitis is a spine diagnosis (patient-view said nothing); alone it is
    axial pain, which an ESI does not treat."""
    request = hook_request("patient-view", conditions=[condition(code)])
    [card] = call(client, PATIENT_VIEW, request).json()["cards"]
    assert "ESI not indicated (axial pain only)" in card["summary"]
