"""docs/deploy.md, "Trying it with the CDS Hooks sandbox", step by step on this machine (no Docker): the
examples dated today, the example FHIR server (tools/example_fhir.py), a local test issuer, the service
started with the documented settings (ports free ones), the curl of step 4 and the calls the sandbox
makes for step 6, each giving the card the walkthrough promises."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid

import httpx
import pytest
from cli import ROOT, free_port, run_cli, serving, wait_until_answering

ORDER_SIGN_PATH = "/cds-services/spine-pathway-order-sign"
PATIENT_VIEW_PATH = "/cds-services/spine-pathway-patient-view"
SELF_HOSTED_SANDBOX = "http://localhost:3000"


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    folder = tmp_path_factory.mktemp("walkthrough")
    examples = folder / "examples"
    subprocess.run([sys.executable, "tools/build_examples.py", "--out", str(examples)], cwd=ROOT, check=True,
                   capture_output=True)  # step 1: make examples
    fhir_port = free_port()
    fhir = subprocess.Popen([sys.executable, "tools/example_fhir.py", "--port", str(fhir_port)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)  # step 1: make example-fhir (the examples, today)
    fhir_base = f"http://127.0.0.1:{fhir_port}/fhir"
    stories = len(list((ROOT / "tests" / "scenarios").glob("p*.json")))
    assert fhir.stdout is not None and fhir.stdout.readline().startswith(
        f"example FHIR server: http://localhost:{fhir_port}/fhir ({stories} patients")
    wait_until_answering(f"{fhir_base}/metadata", "the example FHIR server")
    issuer = folder / ".cds-spine-test-issuer"
    made = run_cli("test-token", "http://localhost:8080/cds-services", "--folder", str(issuer))  # step 2
    assert made.returncode == 0 and "CDS_SPINE_TRUSTED_CLIENTS=" in made.stderr
    trusted = issuer / "trusted-clients.yaml"  # the example FHIR server is on a free port, not 8081
    trusted.write_text(trusted.read_text().replace("http://localhost:8081/fhir", fhir_base))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {"CDS_SPINE_AUTH": "required", "CDS_SPINE_SANDBOX": "true",  # step 3
                "CDS_SPINE_TRUSTED_CLIENTS": str(issuer / "trusted-clients.yaml"), "CDS_SPINE_PUBLIC_BASE_URL": base,
                "CDS_SPINE_ALLOW_UNAUTHENTICATED_FHIR": "true", "CDS_SPINE_SANDBOX_FHIR_SERVERS": fhir_base,
                "CDS_SPINE_CORS_ORIGINS": f"https://sandbox.cds-hooks.org,{SELF_HOSTED_SANDBOX}",
                "CDS_SPINE_DATABASE_URL": f"sqlite:///{folder / 'cds-spine.db'}"}
    try:
        with serving(port=port, **settings) as served:
            assert served == base
            yield {"base": base, "fhir": fhir_base, "issuer": issuer, "examples": examples,
                   "database": folder / "cds-spine.db"}
    finally:
        fhir.terminate()
        fhir.communicate(timeout=10)  # closes its stdout too


def token(walkthrough, url: str) -> str:
    result = run_cli("test-token", url, "--folder", str(walkthrough["issuer"]))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_step_4_send_gets_the_order_card_with_a_fresh_hook_instance_each_time(walkthrough):
    url = walkthrough["base"] + ORDER_SIGN_PATH
    example = walkthrough["examples"] / "requests" / "p03-esi-short-nsaid.json"
    for _ in range(2):
        result = run_cli("send", str(example), url, "--test-issuer", str(walkthrough["issuer"]))
        assert result.returncode == 0, result.stderr
        [card] = json.loads(result.stdout)["cards"]
        assert card["summary"] == "Only 11 days of conservative therapy documented; 28 days recommended before lumbar ESI"
    with sqlite3.connect(walkthrough["database"]) as connection:
        sent = connection.execute("select hook_instance from calls where service_id = ?",
                                  ("spine-pathway-order-sign",)).fetchall()
    assert len(sent) == len(set(sent)) >= 2  # never the example's own hookInstance twice
    refused = run_cli("send", str(example), url, "--test-issuer", str(walkthrough["issuer"] / "absent"))
    assert refused.returncode == 1 and "answered 401" in refused.stderr
    assert "no token was sent" in refused.stderr and "cds-spine test-token" in refused.stderr  # issue 34, point 6
    elsewhere = url.replace("127.0.0.1", "localhost")  # the service's public URL names 127.0.0.1: another audience
    misnamed = run_cli("send", str(example), elsewhere, "--test-issuer", str(walkthrough["issuer"]))
    assert misnamed.returncode == 1 and "answered 401" in misnamed.stderr
    assert f"the token's audience (aud) was {elsewhere}" in misnamed.stderr


def test_step_4_curl_with_a_test_token_gets_the_order_card(walkthrough):
    url = walkthrough["base"] + ORDER_SIGN_PATH
    body = (walkthrough["examples"] / "requests" / "p03-esi-short-nsaid.json").read_bytes()
    answer = httpx.post(url, content=body, headers={"Authorization": f"Bearer {token(walkthrough, url)}",
                                                    "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    [card] = answer.json()["cards"]
    assert (card["indicator"], card["summary"]) == (
        "warning", "Only 11 days of conservative therapy documented; 28 days recommended before lumbar ESI")
    assert card["suggestions"][0]["label"] == "Refer to physical therapy instead"
    assert httpx.post(url, content=body, headers={"Content-Type": "application/json"}).status_code == 401


@pytest.mark.parametrize("patient, indicator, summary", [
    ("pat-p05-esi-fifth-in-a-year", "info",
     "Spine pathway: 43 days of conservative therapy; ESI at the lumbar limit; surgery criteria met"),
    ("pat-p04-esi-cauda-equina", "warning", "Red flag on record (Cauda equina syndrome): evaluate urgently"),
    ("pat-p03-esi-short-nsaid", "info", "Spine pathway: 11 days of conservative therapy; ESI needs 17 more days; "
                                        "surgery needs 31 more days"),
])
def test_step_6_patient_view_from_a_sandbox_in_the_browser(walkthrough, patient, indicator, summary):
    """As the sandbox calls it: from its origin, with its FHIR server and no prefetch (the service fetches)."""
    url = walkthrough["base"] + PATIENT_VIEW_PATH
    request = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()), "fhirServer": walkthrough["fhir"],
               "context": {"userId": "Practitioner/example", "patientId": patient}}
    answer = httpx.post(url, json=request, headers={"Authorization": f"Bearer {token(walkthrough, url)}",
                                                    "Origin": SELF_HOSTED_SANDBOX})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == SELF_HOSTED_SANDBOX
    [card] = answer.json()["cards"]
    assert card["indicator"] == indicator and card["summary"].startswith(summary)


def test_step_6_the_sandbox_cannot_order_an_esi_so_its_order_tabs_get_no_cards(walkthrough):
    url = walkthrough["base"] + ORDER_SIGN_PATH
    rx = {"resourceType": "MedicationRequest", "id": "rx-1", "status": "draft", "intent": "order",
          "subject": {"reference": "Patient/pat-p03-esi-short-nsaid"},
          "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                    "code": "197806"}]}}
    request = {"hook": "order-sign", "hookInstance": str(uuid.uuid4()), "fhirServer": walkthrough["fhir"],
               "context": {"userId": "Practitioner/example", "patientId": "pat-p03-esi-short-nsaid",
                           "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": rx}]}}}
    answer = httpx.post(url, json=request, headers={"Authorization": f"Bearer {token(walkthrough, url)}"})
    assert answer.status_code == 200 and answer.json() == {"cards": []}


def test_a_sandbox_at_an_origin_not_listed_gets_no_cors_answer(walkthrough):
    preflight = httpx.options(walkthrough["base"] + "/cds-services", headers={
        "Origin": "http://localhost:9999", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 400 and "access-control-allow-origin" not in preflight.headers


def test_the_example_fhir_server_answers_the_services_prefetch_queries(walkthrough):
    fhir = walkthrough["fhir"]
    found = httpx.get(f"{fhir}/Condition", params={"patient": "pat-p04-esi-cauda-equina",
                                                     "_include": "Condition:encounter"}).json()
    assert found["resourceType"] == "Bundle" and found["total"] >= 1
    assert httpx.get(f"{fhir}/Patient/pat-p04-esi-cauda-equina").json()["id"] == "pat-p04-esi-cauda-equina"
    assert httpx.get(f"{fhir}/Patient/nobody").status_code == 404
    index = json.loads((walkthrough["examples"] / "index.json").read_text())
    assert httpx.get(f"{fhir}/Patient").json()["total"] == len(index["examples"])
