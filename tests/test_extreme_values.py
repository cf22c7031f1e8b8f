"""Issue 32, M3: values no record should hold never cost the patient an answer. Dates of year 1 or 9999 (a
placeholder or a typo), a supply of a million years, a score of 1e70, pain -1 or 11/10: each is an element that
cannot be read, left out and named on the card; the call is answered as for the rest of the record. Over HTTP."""
from __future__ import annotations

import pytest
from support import (
    ORDER_SIGN,
    PATIENT_VIEW,
    RXNORM,
    call,
    coded,
    condition,
    day,
    hook_request,
    medication_statement,
    procedure,
    radiculopathy,
)
from test_scores import ODI, PAIN, PROMIS_PI, observation, repeat_esi

from cds_spine.pathway.wording import SUMMARY_LIMIT, fitted

FAR_FUTURE = "9999-12-31T23:59:59-14:00"


def supply_of(value: float, unit: str) -> dict:
    return {"resourceType": "MedicationRequest", "id": "mr-endless", "status": "active", "intent": "order",
            "authoredOn": day(-20), "medicationCodeableConcept": coded(RXNORM, "197806", "Ibuprofen 600 MG Oral Tablet"),
            "subject": {"reference": "Patient/p1"},
            "dispenseRequest": {"expectedSupplyDuration": {"value": value, "unit": unit, "code": unit}}}


EXTREMES = {
    "a diagnosis of year 1": ({"conditions": [radiculopathy(), condition("M48.061", onsetDateTime="0001-01-01",
                                                                         rid="stenosis")]},
                              "a diagnosis without onsetDateTime"),
    "a diagnosis at the end of year 9999": ({"conditions": [radiculopathy(), condition(
        "M48.061", onsetDateTime=FAR_FUTURE, rid="stenosis")]}, "a diagnosis without onsetDateTime"),
    "therapy of year 1": ({"procedures": [procedure("97110", "0001-01-01", rid="pt-old")]},
                          "a procedure without performedDateTime"),
    "therapy at the end of year 9999": ({"procedures": [procedure("97110", FAR_FUTURE, rid="pt-late")]},
                                        "a procedure without performedDateTime"),
    "a drug taken until year 9999": ({"medication_statements": [medication_statement(
        "197806", day(-30), "9999-12-31", rid="ms-late")]}, "a medication without effectivePeriod"),
    "a supply of a million years": ({"medication_requests": [supply_of(1e6, "a")]},
                                    "1 record entry could not be read and was left out: a prescription."),
}


@pytest.mark.parametrize("case", list(EXTREMES))
def test_an_extreme_date_or_supply_is_named_and_the_rest_is_read(client, case):
    prefetch, named = EXTREMES[case]
    response = call(client, ORDER_SIGN, hook_request("order-sign", **prefetch))
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    assert named in card["detail"]
    assert "/" not in card["detail"].split("**On record:**")[1].split("**Rule:**")[0]  # issue 33: no resource ids


@pytest.mark.parametrize("case", list(EXTREMES))
def test_patient_view_answers_whatever_the_dates(client, case):
    prefetch, _ = EXTREMES[case]
    request = hook_request("patient-view", **prefetch)
    request["context"] = {"userId": "Practitioner/1", "patientId": "p1"}
    response = call(client, PATIENT_VIEW, request)
    assert response.status_code == 200, response.text
    assert response.json()["cards"][0]["summary"].startswith("Spine pathway:")


def test_a_pain_score_below_its_scale_does_not_make_a_response(client):
    """Pain 7 before the last ESI, 6 after it, then -1: the -1 is not read (it made "relief" of the warning)."""
    body = call(client, ORDER_SIGN, repeat_esi(observation(PAIN, 62, 7), observation(PAIN, 40, 6),
                                               observation(PAIN, 30, -1, rid="pain-typo"))).json()
    [card] = body["cards"]
    assert card["summary"] == f"Last lumbar ESI: pain 7/10 on {day(-62)}, 6/10 on {day(-40)}: 14 % relief; 50 % required"
    assert f"pain -1 on {day(-30)} (outside 0-10)" in card["detail"]


def test_a_score_above_its_scale_is_never_shown(client):
    body = call(client, ORDER_SIGN, repeat_esi(observation(PAIN, 62, 11, rid="eleven"), observation(PAIN, 30, 10),
                                               observation(ODI, 62, 60), observation(ODI, 30, 55))).json()
    [card] = body["cards"]
    assert "11/10" not in card["summary"] + card["detail"]
    assert card["summary"] == (f"Last lumbar ESI: disability index 60 % on {day(-62)}, 55 % on {day(-30)}: 8 % relief; "
                               f"50 % required")
    assert f"pain 11 on {day(-62)} (outside 0-10)" in card["detail"]


def test_a_score_of_1e70_gives_a_valid_card(client):
    body = call(client, ORDER_SIGN, repeat_esi(observation(PROMIS_PI, 62, 1e70, rid="huge"),
                                               observation(PROMIS_PI, 30, 60), observation(PAIN, 62, 7),
                                               observation(PAIN, 30, 6))).json()
    [card] = body["cards"]
    assert len(card["summary"]) < SUMMARY_LIMIT
    assert f"PROMIS pain interference 1e+70 on {day(-62)} (outside 0-100)" in card["detail"]


def test_a_summary_longer_than_a_card_allows_is_shortened_never_invalid():
    assert fitted("x" * 139) == "x" * 139
    shortened = fitted("word " * 40)
    assert len(shortened) == SUMMARY_LIMIT - 1 and shortened.endswith("…")
