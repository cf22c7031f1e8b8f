"""Checklist B7-B13 and the lenient reading of draft orders (D29, D30): 4xx that name the field, never 500."""
from __future__ import annotations

import json

import pytest
from support import (
    ORDER_SELECT,
    ORDER_SIGN,
    PATIENT_VIEW,
    authorization,
    call,
    esi_order,
    hook_request,
    indicators,
    outcome_expressions,
)


@pytest.mark.parametrize("field", ["hook", "hookInstance", "context"])
def test_missing_required_field_is_400_naming_it(client, field):
    request = hook_request()
    del request[field]
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == [field]
    assert field in response.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("field", ["userId", "patientId"])
def test_missing_context_field_is_400_naming_it(client, field):
    request = hook_request("order-sign")
    del request["context"][field]
    response = call(client, ORDER_SIGN, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == [f"context.{field}"]


def test_order_sign_requires_draft_orders(client):
    request = hook_request("order-sign")
    del request["context"]["draftOrders"]
    response = call(client, ORDER_SIGN, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["context.draftOrders"]


def test_patient_id_must_be_a_fhir_id(client):
    request = hook_request()
    request["context"]["patientId"] = "p1&_include=*"
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["context.patientId"]


def test_wrong_types_are_named(client):
    request = hook_request()
    request["hookInstance"] = 42
    request["context"]["selections"] = "ServiceRequest/esi-1"
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["hookInstance"]


@pytest.mark.parametrize("drop", ["draftOrders", "selections"])
def test_order_select_without_draft_orders_or_selections_is_200_without_cards(client, drop):
    request = hook_request()
    del request["context"][drop]
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


@pytest.mark.parametrize("body", [b'{"hook":', b"[1, 2]", b"", b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_400(client, body):
    response = client.post(f"/cds-services/{ORDER_SELECT}", content=body,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_fhir_authorization_without_fhir_server_is_400(client):
    response = call(client, ORDER_SELECT, hook_request(fhirAuthorization=authorization()))
    assert response.status_code == 400
    assert "fhirServer" in response.json()["issue"][0]["diagnostics"]


def test_fhir_authorization_fields_are_checked(client):
    auth = authorization()
    del auth["access_token"]
    response = call(client, ORDER_SELECT, hook_request(fhirServer="https://ehr.example.org/fhir",
                                                      fhirAuthorization=auth))
    assert response.status_code == 400
    assert outcome_expressions(response) == ["fhirAuthorization.access_token"]


def test_hook_that_does_not_match_the_service_is_400(client):
    response = call(client, ORDER_SELECT, hook_request("patient-view"))
    assert response.status_code == 400
    assert outcome_expressions(response) == ["hook"]


def test_unknown_service_is_404_with_an_operation_outcome(client):
    for path in ("/cds-services/does-not-exist", "/cds-services/does-not-exist/feedback"):
        response = client.post(path, content=json.dumps(hook_request()))
        assert response.status_code == 404
        assert response.json()["issue"][0]["code"] == "not-found"


def test_get_on_a_service_is_405_not_cards(client):
    response = client.get(f"/cds-services/{ORDER_SELECT}")
    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


def test_unknown_context_fields_and_extensions_are_ignored(client):
    plain = call(client, ORDER_SELECT, hook_request())
    request = hook_request(extension={"com.example.x": {}})
    request["context"]["foo"] = 1
    extended = call(client, ORDER_SELECT, request)
    assert extended.status_code == 200
    assert [c["summary"] for c in extended.json()["cards"]] == [c["summary"] for c in plain.json()["cards"]]
    assert indicators(extended) == ["warning"]


def sandbox_shaped_orders() -> list[dict]:
    return [
        {"resourceType": "MedicationOrder", "id": "order-123", "patient": {"reference": "Patient/p1"},
         "dateWritten": "2026-01-01", "reasonCodeableConcept": {"text": "pain"}},
        {"resourceType": "MedicationRequest", "id": "request-123", "reasonCode": {"text": "an object"},
         "category": {"text": "also an object"}},
        {"resourceType": "ServiceRequest", "id": "example-request-id", "status": "draft", "intent": "plan",
         "code": {"coding": [{}]}, "reasonCode": [{"coding": [{"system": "http://snomed.info/sct",
                                                              "code": "279039007"}]}]},
        {"resourceType": "DeviceRequest", "id": "d1", "codeCodeableConcept": "not an object"},
    ]


@pytest.mark.parametrize("selection", ["MedicationOrder/order-123", "MedicationRequest/request-123",
                                       "ServiceRequest/example-request-id", "ServiceRequest/missing"])
def test_sandbox_shaped_draft_orders_get_200_and_no_card(client, selection):
    request = hook_request(orders=[], selections=[selection])
    request["context"]["draftOrders"] = {"resourceType": "Bundle",
                                         "entry": [{"resource": r} for r in sandbox_shaped_orders()] + [{}]}
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 200
    assert response.json() == {"cards": []}


def test_a_bundle_without_orders_or_type_gets_200(client):
    for draft in ({"resourceType": "Bundle"}, {"resourceType": "Bundle", "entry": [{"resource": None}]}):
        request = hook_request("order-sign")
        request["context"]["draftOrders"] = draft
        assert call(client, ORDER_SIGN, request).json() == {"cards": []}


@pytest.mark.parametrize("draft, field", [
    ({"resourceType": "Patient", "id": "p1"}, "context.draftOrders.resourceType"),
    ({}, "context.draftOrders.resourceType"),
    ({"resourceType": "Bundle", "entry": "nope"}, "context.draftOrders.entry"),
    ({"resourceType": "Bundle", "entry": [3]}, "context.draftOrders.entry[0]"),
    ({"resourceType": "Bundle", "entry": [{"resource": "not a resource"}]}, "context.draftOrders.entry[0].resource"),
    ({"resourceType": "Bundle", "entry": [{}, {"resource": {"id": "no-type"}}]}, "context.draftOrders.entry[1]"),
    (["a list"], "context.draftOrders"),
])
def test_draft_orders_of_the_wrong_kind_are_400_naming_the_field(client, draft, field):
    request = hook_request("order-sign")
    request["context"]["draftOrders"] = draft
    response = call(client, ORDER_SIGN, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == [field]


def test_draft_orders_are_bounded(make_client):
    client = make_client(max_draft_orders=3)
    request = hook_request("order-sign", orders=[esi_order(f"esi-{i}") for i in range(4)])
    response = call(client, ORDER_SIGN, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["context.draftOrders.entry"]
    assert "CDS_SPINE_MAX_DRAFT_ORDERS" in response.json()["issue"][0]["diagnostics"]
    request["context"]["draftOrders"]["entry"].pop()
    assert call(client, ORDER_SIGN, request).status_code == 200


def test_stu3_procedure_request_is_evaluated_like_a_service_request(client):
    order = esi_order(resource_type="ProcedureRequest")
    response = call(client, ORDER_SELECT, hook_request(orders=[order]))
    assert indicators(response) == ["warning"]
    delete = response.json()["cards"][0]["suggestions"][0]["actions"][0]
    assert delete == {"type": "delete", "description": delete["description"], "resourceId": "ProcedureRequest/esi-1"}


def test_patient_view_without_encounter_is_fine(client):
    response = call(client, PATIENT_VIEW, hook_request("patient-view"))
    assert response.status_code == 200
