"""Checklist F44-F48: feedback is validated, stored once, and tolerant of unknown cards."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from support import ORDER_SELECT, audit_store, call, hook_request

from cds_spine.audit import tables

URL = f"/cds-services/{ORDER_SELECT}/feedback"


def stored_feedback(client) -> list:
    with audit_store(client).engine.connect() as connection:
        return list(connection.execute(select(tables.feedback).order_by(tables.feedback.c.id)))


@pytest.fixture
def card(client) -> dict:
    return call(client, ORDER_SELECT, hook_request()).json()["cards"][0]


def accepted(card: dict) -> dict:
    return {"card": card["uuid"], "outcome": "accepted", "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
            "outcomeTimestamp": "2026-01-01T10:00:00Z"}


def test_accepted_feedback_is_recorded(client, card):
    response = client.post(URL, json={"feedback": [accepted(card)]})
    assert response.status_code == 200 and response.json() == {"received": 1}
    [event] = stored_feedback(client)
    assert (event.card_uuid, event.outcome, event.accepted_suggestions, event.unknown_card) == (
        card["uuid"], "accepted", [card["suggestions"][0]["uuid"]], False)


def test_overridden_with_coded_reason_and_comment(client, card):
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:05:00Z",
            "overrideReason": {"reason": card["overrideReasons"][2], "userComment": "cauda equina symptoms"}}
    assert client.post(URL, json={"feedback": [item]}).status_code == 200
    [event] = stored_feedback(client)
    assert (event.override_code, event.override_comment) == ("red-flag", "cauda equina symptoms")


@pytest.mark.parametrize("reason", [None, {"reason": {"code": "severe-pain",
                                                      "system": "https://cds-spine.org/fhir/CodeSystem/override-reason"}}])
def test_overridden_without_reason_or_with_sandbox_shaped_reason(client, card, reason):
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:05:00Z"}
    if reason:
        item["overrideReason"] = reason
    assert client.post(URL, json={"feedback": [item]}).status_code == 200


def test_two_items_and_a_repeat_are_accepted_and_stored_once(client, card):
    other = {"card": "unknown-card", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T11:00:00Z"}
    assert client.post(URL, json={"feedback": [accepted(card), other]}).json() == {"received": 2}
    assert client.post(URL, json={"feedback": [accepted(card)]}).status_code == 200
    stored = stored_feedback(client)
    assert sorted((e.card_uuid, e.unknown_card) for e in stored) == sorted([(card["uuid"], False),
                                                                           ("unknown-card", True)])


@pytest.mark.parametrize("change,field", [
    ({"outcome": "dismissed"}, "feedback[0].outcome"),
    ({"acceptedSuggestions": None}, "feedback[0]"),
    ({"outcomeTimestamp": None}, "feedback[0].outcomeTimestamp"),
    ({"outcomeTimestamp": "yesterday"}, "feedback[0].outcomeTimestamp"),
    ({"outcomeTimestamp": "2026-01-01T10:00:00"}, "feedback[0].outcomeTimestamp"),
])
def test_malformed_feedback_is_400_naming_the_field(client, card, change, field):
    item = {**accepted(card), **change}
    item = {key: value for key, value in item.items() if value is not None}
    response = client.post(URL, json={"feedback": [item]})
    assert response.status_code == 400
    assert [issue["expression"] for issue in response.json()["issue"]] == [[field]]
    assert stored_feedback(client) == []


@pytest.mark.parametrize("body", [{}, {"feedback": []}, {"feedback": "yes"}])
def test_body_without_a_feedback_array_is_400(client, body):
    assert client.post(URL, json=body).status_code == 400


STANDARD = "http://terminology.hl7.org/CodeSystem/non-adherence-reason-codes"
OURS = "https://cds-spine.org/fhir/CodeSystem/override-reason"


def test_each_reason_carries_the_cds_hooks_3_standard_code_where_one_fits(card):
    standard = {reason["code"]: reason.get("extension", {}).get("org.cds-spine.standard-override-reason")
                for reason in card["overrideReasons"]}
    assert standard["done-elsewhere"] == {"system": STANDARD, "code": "action-completed"}
    assert standard["red-flag"] == {"system": STANDARD, "code": "patient-ineligible"}
    assert standard["patient-declined"] == {"system": STANDARD, "code": "does-not-align-preferences"}
    assert standard["severe-pain"] is None
    coded = [coding["code"] for coding in standard.values() if coding]
    assert len(coded) == len(set(coded)) == 5  # one reason per standard code: either coding reads back as one


def test_either_coding_of_a_reason_is_recorded_as_one(client):
    first, second = (call(client, ORDER_SELECT, hook_request()).json()["cards"][0] for _ in range(2))
    items = [{"card": first["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:05:00Z",
              "overrideReason": {"reason": {"system": OURS, "code": "done-elsewhere"}}},
             {"card": second["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:06:00Z",
              "overrideReason": {"reason": {"system": STANDARD, "code": "action-completed"}}}]
    assert client.post(URL, json={"feedback": items}).status_code == 200
    assert [(e.override_system, e.override_code) for e in stored_feedback(client)] == [(OURS, "done-elsewhere")] * 2
