"""Checklist C14-C23: prefetch semantics and the FHIR server fallback (pytest-httpx is the EHR's server)."""
from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from support import (
    ORDER_SELECT,
    ORDER_SIGN,
    RECORD_KEYS,
    RXNORM,
    authorization,
    bundle,
    call,
    coded,
    ct_yes,
    day,
    esi_order,
    hook_request,
    indicators,
    radiculopathy,
)

FHIR = "https://ehr.example.org/fhir"
QUERY_TYPES = {"conditions": "Condition", "procedures": "Procedure", "medicationStatements": "MedicationStatement",
               "medicationRequests": "MedicationRequest", "serviceRequests": "ServiceRequest"}


def search_url(key: str, patient: str = "p1") -> str:
    return f"{FHIR}/{QUERY_TYPES[key]}?patient={patient}"


def with_server(request: dict, token: str | None = "T") -> dict:
    request["fhirServer"] = FHIR
    if token:
        request["fhirAuthorization"] = authorization(token)
    return request


def test_ct_none_with_full_prefetch_warns(client):
    response = call(client, ORDER_SELECT, hook_request())
    cards = response.json()["cards"]
    assert indicators(response) == ["warning"]
    assert "ServiceRequest/esi-1" in str(cards[0]["suggestions"])


def test_ct_yes_gives_no_warning(client):
    assert "warning" not in indicators(call(client, ORDER_SELECT, hook_request(procedures=ct_yes())))


@pytest.mark.parametrize("empty", ["null", "empty-bundle"])
def test_null_or_empty_prefetch_is_no_data_and_is_not_requeried(client, httpx_mock, empty):
    request = with_server(hook_request())
    for key in RECORD_KEYS[1:]:
        request["prefetch"][key] = None if empty == "null" else {"resourceType": "Bundle", "type": "searchset",
                                                                 "total": 0}
    response = call(client, ORDER_SELECT, request)
    assert indicators(response) == ["warning"]
    assert httpx_mock.get_requests() == []


def test_missing_keys_without_fhir_server_is_412(client):
    response = call(client, ORDER_SELECT, hook_request(omit=("procedures", "medicationRequests")))
    assert response.status_code == 412
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "incomplete"
    assert outcome["issue"][0]["expression"][0].startswith("prefetch.")


def test_missing_keys_are_fetched_with_the_token_and_only_those(client, httpx_mock):
    httpx_mock.add_response(url=search_url("procedures"), json=bundle(*ct_yes()),
                            match_headers={"Authorization": "Bearer T"})
    httpx_mock.add_response(url=search_url("serviceRequests"), json=bundle(),
                            match_headers={"Authorization": "Bearer T"})
    response = call(client, ORDER_SELECT, with_server(hook_request(omit=("procedures", "serviceRequests"))))
    assert response.status_code == 200
    assert "warning" not in indicators(response)
    assert sorted(str(r.url) for r in httpx_mock.get_requests()) == sorted(
        [search_url("procedures"), search_url("serviceRequests")])


def test_all_missing_keys_are_fetched_concurrently(client, httpx_mock):
    arrived = 0
    everyone_here = asyncio.Event()

    async def slow_server(request: httpx.Request) -> httpx.Response:
        nonlocal arrived
        arrived += 1
        if arrived == len(RECORD_KEYS):
            everyone_here.set()
        await everyone_here.wait()  # a sequential client would never get past the first request
        resources = [radiculopathy()] if "Condition" in request.url.path else []
        return httpx.Response(200, json=bundle(*resources))

    httpx_mock.add_callback(slow_server, url=re.compile(f"{re.escape(FHIR)}/.*"), is_reusable=True)
    response = call(client, ORDER_SELECT, with_server(hook_request(omit=RECORD_KEYS)))
    assert response.status_code == 200
    assert indicators(response) == ["warning"]
    assert arrived == len(RECORD_KEYS)


@pytest.mark.parametrize("failure", ["401", "403", "500", "timeout", "invalid-json", "not-a-bundle"])
def test_fhir_server_failure_is_412_never_a_card(client, httpx_mock, failure):
    if failure == "timeout":
        httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=search_url("procedures"))
    elif failure == "invalid-json":
        httpx_mock.add_response(url=search_url("procedures"), content=b"<html>oops</html>")
    elif failure == "not-a-bundle":
        httpx_mock.add_response(url=search_url("procedures"), json={"resourceType": "OperationOutcome", "issue": []})
    else:
        httpx_mock.add_response(url=search_url("procedures"), status_code=int(failure))
    response = call(client, ORDER_SELECT, with_server(hook_request(omit=("procedures",))))
    assert response.status_code == 412
    assert response.json()["issue"][0]["expression"] == ["prefetch.procedures"]
    assert "T" not in response.json()["issue"][0]["diagnostics"].split()


def test_fhir_server_slower_than_the_budget_is_412(make_client, httpx_mock, caplog):
    client = make_client(fhir_timeout_seconds=0.2)

    async def never_answers(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=bundle())

    httpx_mock.add_callback(never_answers, url=search_url("procedures"))
    response = call(client, ORDER_SELECT, with_server(hook_request(omit=("procedures",))))
    assert response.status_code == 412
    assert "did not provide it" in response.json()["issue"][0]["diagnostics"]
    assert "did not answer within 0.2 s" in caplog.text  # for the operator, never for the caller (issue 32, M1)


def test_unauthenticated_fetch_only_when_the_setting_allows_it(make_client, httpx_mock):
    httpx_mock.add_response(url=search_url("procedures"), json=bundle(*ct_yes()))
    open_client = make_client(allow_unauthenticated_fhir=True)
    allowed = call(open_client, ORDER_SELECT, with_server(hook_request(omit=("procedures",)), token=None))
    assert allowed.status_code == 200
    assert "authorization" not in httpx_mock.get_requests()[0].headers
    strict = call(make_client(), ORDER_SELECT, with_server(hook_request(omit=("procedures",)), token=None))
    assert strict.status_code == 412
    assert "CDS_SPINE_ALLOW_UNAUTHENTICATED_FHIR" in strict.json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("shape", ["outcome", "bundle-with-outcome"])
def test_operation_outcome_in_prefetch_counts_as_not_supplied(client, httpx_mock, shape):
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    request = hook_request()
    request["prefetch"]["procedures"] = outcome if shape == "outcome" else bundle(outcome)
    assert call(client, ORDER_SELECT, request).status_code == 412
    httpx_mock.add_response(url=search_url("procedures"), json=bundle(*ct_yes()))
    fetched = call(client, ORDER_SELECT, with_server(request))
    assert fetched.status_code == 200 and "warning" not in indicators(fetched)


def test_next_links_are_followed_and_page_two_counts(client, httpx_mock):
    page_two = f"{FHIR}/Procedure?patient=p1&page=2"
    request = with_server(hook_request())
    request["prefetch"]["procedures"] = {**bundle(), "link": [{"relation": "next", "url": page_two}]}
    httpx_mock.add_response(url=page_two, json=bundle(*ct_yes()), match_headers={"Authorization": "Bearer T"})
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 200
    assert "warning" not in indicators(response)


def test_fetched_searches_follow_next_links(client, httpx_mock):
    visits = ct_yes()
    httpx_mock.add_response(url=search_url("procedures"),
                            json={**bundle(*visits[:3]), "link": [{"relation": "next", "url": "Procedure?page=2"}]})
    httpx_mock.add_response(url=f"{FHIR}/Procedure?page=2", json=bundle(*visits[3:]))
    response = call(client, ORDER_SELECT, with_server(hook_request(omit=("procedures",))))
    assert "warning" not in indicators(response)


def test_next_link_outside_fhir_server_is_never_followed(client, httpx_mock):
    request = with_server(hook_request())
    request["prefetch"]["procedures"] = {**bundle(), "link": [{"relation": "next",
                                                                "url": "https://attacker.example/steal"}]}
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 412
    assert httpx_mock.get_requests() == []


def test_next_link_without_access_is_412(client):
    request = hook_request()
    request["prefetch"]["procedures"] = {**bundle(), "link": [{"relation": "next", "url": f"{FHIR}/x"}]}
    assert call(client, ORDER_SELECT, request).status_code == 412


def test_page_cap_stops_endless_paging(make_client, httpx_mock):
    client = make_client(fhir_page_cap=3)
    httpx_mock.add_response(url=re.compile(f"{re.escape(FHIR)}/Procedure.*"), is_reusable=True,
                            json={**bundle(), "link": [{"relation": "next", "url": f"{FHIR}/Procedure?again"}]})
    response = call(client, ORDER_SELECT, with_server(hook_request(omit=("procedures",))))
    assert response.status_code == 412
    assert len(httpx_mock.get_requests()) == 3


def test_no_trigger_order_needs_no_patient_data(client, httpx_mock):
    request = with_server(hook_request("order-sign", orders=[esi_order(code="99213")], omit=RECORD_KEYS))
    del request["prefetch"]
    assert call(client, ORDER_SIGN, request).json() == {"cards": []}
    assert httpx_mock.get_requests() == []


def test_patient_resource_is_never_required(client):
    request = hook_request()
    del request["prefetch"]["patient"]
    assert indicators(call(client, ORDER_SELECT, request)) == ["warning"]


def test_same_request_twice_gives_same_content_and_fresh_uuids(client):
    first, second = (call(client, ORDER_SELECT, hook_request()).json()["cards"][0] for _ in range(2))
    assert first["summary"] == second["summary"] and first["detail"] == second["detail"]
    assert first["uuid"] != second["uuid"]
    assert first["suggestions"][0]["uuid"] != second["suggestions"][0]["uuid"]


def test_token_and_patient_id_never_reach_the_logs(client, httpx_mock, caplog):
    caplog.set_level("DEBUG")
    httpx_mock.add_response(url=search_url("procedures", "secretpatient42"), json=bundle())
    request = with_server(hook_request(omit=("procedures",)), token="tok-SECRET-123")
    request["context"]["patientId"] = "secretpatient42"
    call(client, ORDER_SELECT, request)
    assert caplog.records
    assert "tok-SECRET-123" not in caplog.text and "secretpatient42" not in caplog.text


def _ibuprofen_by_reference(reference: str) -> dict:
    return {"resourceType": "MedicationRequest", "id": "mr-ref", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "authoredOn": day(-60),
            "medicationReference": {"reference": reference}}


def test_medication_named_by_reference_but_not_in_prefetch_is_fetched(client, httpx_mock):
    httpx_mock.add_response(url=f"{FHIR}/Medication?_id=ibu", json=bundle(
        {"resourceType": "Medication", "id": "ibu", "code": coded(RXNORM, "197806", "ibuprofen 600 MG Oral Tablet")}),
        match_headers={"Authorization": "Bearer T"})
    request = with_server(hook_request(medication_requests=[_ibuprofen_by_reference("Medication/ibu")]))
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 200
    assert "warning" not in indicators(response)  # 61 days of ibuprofen, read from the fetched Medication


def test_medication_that_cannot_be_fetched_is_412(client, httpx_mock):
    httpx_mock.add_response(url=f"{FHIR}/Medication?_id=ibu", status_code=500)
    request = with_server(hook_request(medication_requests=[_ibuprofen_by_reference("Medication/ibu")]))
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 412
    assert response.json()["issue"][0]["expression"] == ["prefetch.medicationRequests"]


def test_a_call_whose_data_all_came_in_prefetch_is_answered_however_long_it_is_scheduled(make_client):
    """The FHIR budget bounds waiting for the FHIR server, not reading prefetch: on a busy machine (CI, a loaded
    node) a loop that stalls past the budget once gave 412 "the FHIR server did not provide it" on a call that
    needed no server. A budget far below one scheduling step stands in for the stall."""
    client = make_client(fhir_timeout_seconds=1e-6)
    response = call(client, ORDER_SIGN, hook_request("order-sign"))
    assert response.status_code == 200, response.text
    assert [card["summary"].split(";")[0] for card in response.json()["cards"]] == [
        "No conservative therapy documented in the last 12 months before lumbar ESI"]
