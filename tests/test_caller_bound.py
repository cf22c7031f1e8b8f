"""Issue 32, M1 and M5: what a call may reach and what it may read depends on who called.

- M1: `fhirServer` is read, and the EHR's access token sent, only when it is one of the calling EHR's
  `fhir_servers` (the sandbox's from CDS_SPINE_SANDBOX_FHIR_SERVERS): an authenticated EHR pointing it at an
  internal service gets a 412 saying the server is not trusted, and the internal service receives nothing.
- M5: the override memory of a patient id is the calling EHR's (issuer, tenant, FHIR server): an override at
  hospital A never hides a card for the patient with the same id at hospital B.
Over HTTP, with real keys and signed JWTs."""
from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest
import yaml
from cli import run_cli
from support import ORDER_SELECT, ORDER_SIGN, authorization, call, hook_request
from tokens import BASE, SigningKey, claims, jwks, mint

EHR = "https://ehr-a.example.org"
FHIR = "https://ehr-a.example.org/fhir/r4"
CANARY = "http://10.0.0.7:8080/internal-admin"
KEY = SigningKey.ec("ehr-a-key")


@pytest.fixture
def service(make_client, tmp_path):
    (tmp_path / "jwks.json").write_text(json.dumps(jwks(KEY)))
    trusted = tmp_path / "trusted-clients.yaml"
    trusted.write_text(yaml.safe_dump([{"iss": EHR, "jwks_file": "jwks.json", "tenants": ["hospital-a", "hospital-b"],
                                        "fhir_servers": [FHIR]}]))
    return make_client(auth="required", trusted_clients=trusted, public_base_url=BASE)


def post(client, service_id: str, request: dict, tenant: str = "hospital-a"):
    token = mint(KEY, claims(EHR, f"{BASE}/cds-services/{service_id}", tenant=tenant))
    return call(client, service_id, request, headers={"Authorization": f"Bearer {token}"})


def missing_procedures(server: str, hook: str = "order-select") -> dict:
    return hook_request(hook, fhirServer=server, fhirAuthorization=authorization("EHR-TOKEN"), omit=("procedures",))


def test_a_fhir_server_not_trusted_for_the_caller_is_never_sent_the_token(service, httpx_mock):
    response = post(service, ORDER_SELECT, missing_procedures(CANARY))
    assert response.status_code == 412
    [issue] = response.json()["issue"]
    assert "fhirServer is not among the FHIR servers trusted for the calling EHR" in issue["diagnostics"]
    assert httpx_mock.get_requests() == []  # the canary received nothing, the token went nowhere


def test_the_callers_own_fhir_server_is_read_however_its_url_is_spelled(service, httpx_mock):
    httpx_mock.add_response(url=f"{FHIR}/Procedure?patient=p1",
                            json={"resourceType": "Bundle", "type": "searchset", "entry": []})
    response = post(service, ORDER_SELECT, missing_procedures("HTTPS://EHR-A.example.org:443/fhir/r4/"))
    assert response.status_code == 200, response.text
    [request] = httpx_mock.get_requests()
    assert request.headers["authorization"] == "Bearer EHR-TOKEN"


def test_with_everything_in_prefetch_an_untrusted_fhir_server_is_not_needed(service, httpx_mock):
    request = hook_request(fhirServer=CANARY, fhirAuthorization=authorization("EHR-TOKEN"))
    assert post(service, ORDER_SELECT, request).status_code == 200
    assert httpx_mock.get_requests() == []


def test_check_config_names_each_issuers_fhir_servers_and_the_sandboxs(tmp_path):
    (tmp_path / "jwks.json").write_text(json.dumps(jwks(KEY)))
    trusted = tmp_path / "trusted-clients.yaml"
    trusted.write_text(yaml.safe_dump([{"iss": EHR, "jwks_file": "jwks.json"}]))
    result = run_cli("check-config", CDS_SPINE_AUTH="required", CDS_SPINE_TRUSTED_CLIENTS=str(trusted),
                     CDS_SPINE_PUBLIC_BASE_URL=BASE, CDS_SPINE_SANDBOX="true",
                     CDS_SPINE_SANDBOX_FHIR_SERVERS="http://localhost:8081/fhir",
                     CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}")
    assert f"{EHR} (" in result.stdout and "no FHIR server (fhir_servers): its calls are answered from prefetch " \
                                          "alone" in result.stdout
    assert "https://sandbox.cds-hooks.org (" in result.stdout and "FHIR servers http://localhost:8081/fhir" in result.stdout


def override(client, card: dict, tenant: str, at: str | None = None) -> None:
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": at or datetime.now(UTC).isoformat(),
            "overrideReason": {"reason": card["overrideReasons"][0]}}
    token = mint(KEY, claims(EHR, f"{BASE}/cds-services/{ORDER_SELECT}/feedback", tenant=tenant))
    answered = client.post(f"/cds-services/{ORDER_SELECT}/feedback", json={"feedback": [item]},
                           headers={"Authorization": f"Bearer {token}"})
    assert answered.status_code == 200, answered.text


def cards(client, service_id: str, tenant: str, server: str | None = FHIR) -> list[dict]:
    request = hook_request("order-select" if service_id == ORDER_SELECT else "order-sign",
                           **({"fhirServer": server} if server else {}))
    response = post(client, service_id, request, tenant)
    assert response.status_code == 200, response.text
    return response.json()["cards"]


def test_an_override_at_one_hospital_never_hides_the_card_at_another(service):
    [card] = cards(service, ORDER_SELECT, "hospital-a")
    override(service, card, "hospital-a")
    assert cards(service, ORDER_SIGN, "hospital-a") == []  # the memory works where the override was made
    [shown] = cards(service, ORDER_SIGN, "hospital-b")  # the same patient id, another hospital's patient
    assert shown["source"]["topic"]["code"] == card["source"]["topic"]["code"]
    [other_server] = cards(service, ORDER_SIGN, "hospital-a", server=None)  # nor another FHIR server's
    assert other_server["summary"] == card["summary"]


def test_feedback_from_another_hospital_never_overrides_a_card_it_was_not_shown(service, tmp_path):
    """Issue 32: a card's uuid sent by another EHR (another tenant here) is kept as feedback on an unknown card:
    it is not linked to hospital A's card, counted as A's override, nor remembered for A's patient."""
    [card] = cards(service, ORDER_SELECT, "hospital-a")
    override(service, card, "hospital-b")
    [still] = cards(service, ORDER_SIGN, "hospital-a")
    assert still["summary"] == card["summary"]
    with sqlite3.connect(tmp_path / "audit-0.db") as database:
        stored = database.execute("SELECT call_id, unknown_card FROM feedback WHERE card_uuid = ?",
                                  (card["uuid"],)).fetchall()
    assert stored == [(None, 1)]
    override(service, card, "hospital-a")  # the hospital that was shown it
    assert cards(service, ORDER_SIGN, "hospital-a") == []


def test_feedback_another_ehr_sends_first_never_makes_the_cards_own_a_duplicate(service, tmp_path):
    """Issue 32: the same card uuid, outcome and time from another hospital first (a guessed or leaked uuid) is kept
    as unknown; hospital A's own feedback, sent after it, is still stored, linked, and remembered."""
    [card] = cards(service, ORDER_SELECT, "hospital-a")
    at = datetime.now(UTC).isoformat()
    override(service, card, "hospital-b", at)
    override(service, card, "hospital-a", at)
    override(service, card, "hospital-a", at)  # the same feedback again: once
    with sqlite3.connect(tmp_path / "audit-0.db") as database:
        stored = database.execute("SELECT call_id IS NOT NULL, unknown_card FROM feedback WHERE card_uuid = ? "
                                  "ORDER BY id", (card["uuid"],)).fetchall()
    assert stored == [(0, 1), (1, 0)]
    assert cards(service, ORDER_SIGN, "hospital-a") == []
