"""Structured logs from a real `cds-spine serve`: one JSON object per line (app and server alike), the
request id in every line of a request and in its response header, one access line per request with
the reason of every refusal, and never a token or a plain patient id."""
from __future__ import annotations

import json
import subprocess

import httpx
from cli import CDS_SPINE, ROOT, clean_env, free_port, wait_until_answering
from reporting import AUDIT_USERS_ENV
from support import ORDER_SELECT, authorization, hook_request

TOKEN = "eyJhbGciOiJFUzM4NCJ9.secret-fhir-token"
PATIENT = "patient-8f3e2a"


def test_json_lines_with_request_ids_access_lines_and_no_secrets(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([CDS_SPINE, "serve", "--port", str(port)], cwd=ROOT, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True,
                               env=clean_env(CDS_SPINE_LOG_FORMAT="json", CDS_SPINE_CORS_ORIGINS="https://ehr.example.org",
                                             CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}"))
    try:
        wait_until_answering(f"{base}/healthz")
        request = hook_request(fhirServer="https://ehr.example.org/fhir", fhirAuthorization=authorization(TOKEN),
                               omit=("procedures",))
        request["context"]["patientId"] = PATIENT
        unavailable = httpx.post(f"{base}/cds-services/{ORDER_SELECT}", json=request,
                                 headers={"X-Request-ID": "ehr-req-42"}, timeout=30)
        assert (unavailable.status_code, unavailable.headers["x-request-id"]) == (412, "ehr-req-42")
        bad = httpx.post(f"{base}/cds-services/{ORDER_SELECT}", json={"hook": "order-select"})
        assert bad.status_code == 400 and len(bad.headers["x-request-id"]) == 32
        assert httpx.post(f"{base}/cds-services/nope", json={}).status_code == 404
        assert httpx.get(f"{base}/cds-services/{ORDER_SELECT}").status_code == 405
        assert httpx.post(f"{base}/cds-services/{ORDER_SELECT}", content="x").status_code == 415
        preflight = httpx.options(f"{base}/cds-services", headers={
            "Origin": "https://evil.example.org", "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 400
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # every line is JSON
    assert {line["logger"] for line in lines} >= {"uvicorn.error", "cds_spine.calls", "cds_spine.access"}
    assert TOKEN not in stderr and PATIENT not in stderr
    access = [line for line in lines if line["logger"] == "cds_spine.access"]
    by_status = {line["status"]: line for line in access if line["path"] != "/healthz" and line["method"] != "OPTIONS"}
    assert set(by_status) == {412, 400, 404, 405, 415}
    assert by_status[412]["request_id"] == "ehr-req-42"
    assert "procedures" in by_status[412]["reason"] and "fhirServer" not in by_status[412]["path"]
    assert "context is required" in by_status[400]["reason"]
    assert all(by_status[status].get("reason") for status in (404, 405, 415))
    [call_line] = [line for line in lines if line["logger"] == "cds_spine.calls" and line["request_id"] == "ehr-req-42"]
    assert "status=412" in call_line["message"]  # readable, and the same facts as fields
    assert (call_line["event"], call_line["service"], call_line["status"], call_line["orders"], call_line["cards"]) == (
        "call", ORDER_SELECT, 412, 1, 0)
    assert call_line["hookInstance"] == request["hookInstance"] and call_line["patient"] not in (PATIENT, "")
    assert isinstance(call_line["fetched"], list) and isinstance(call_line["ms"], float)
    refused = [line for line in access if line["method"] == "OPTIONS"]
    assert refused and refused[0]["reason"] == ("CORS origin 'https://evil.example.org' is not allowed: the browser "
                                                "blocks the answer; add the origin to CDS_SPINE_CORS_ORIGINS")


def test_feedback_and_refusals_carry_their_facts_as_json_fields(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([CDS_SPINE, "serve", "--port", str(port)], cwd=ROOT, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True,
                               env=clean_env(CDS_SPINE_LOG_FORMAT="json", CDS_SPINE_AUDIT_USERS=AUDIT_USERS_ENV,
                                             CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}"))
    try:
        wait_until_answering(f"{base}/healthz")
        [card] = httpx.post(f"{base}/cds-services/{ORDER_SELECT}", json=hook_request(), timeout=30).json()["cards"]
        overridden = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:05:00Z",
                      "overrideReason": {"reason": card["overrideReasons"][0]}}
        assert httpx.post(f"{base}/cds-services/{ORDER_SELECT}/feedback",
                          json={"feedback": [overridden]}).status_code == 200
        assert httpx.get(f"{base}/audit/summary", headers={"Authorization": "Bearer wrong-key"}).status_code == 401
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    [feedback] = [line for line in lines if line.get("event") == "feedback"]
    assert (feedback["service"], feedback["feedback"], feedback["outcomes"], feedback["overrideReasons"]) == (
        ORDER_SELECT, 1, ["overridden"], [card["overrideReasons"][0]["code"]])
    [refused] = [line for line in lines if line.get("event") == "audit-credentials-refused"]
    assert refused["address"] == "127.0.0.1" and refused["reason"] and "wrong-key" not in json.dumps(refused)


def test_a_callers_text_cannot_write_a_line_of_its_own_in_the_text_log(tmp_path):
    """Issue 32, L7: a hookInstance with CR and LF (and a right-to-left override) is one escaped line."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([CDS_SPINE, "serve", "--port", str(port)], cwd=ROOT, stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True,
                               env=clean_env(CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}"))
    forged = "2026-12-07 10:00:00,000 WARNING cds_spine.security audit store wiped by admin"
    try:
        wait_until_answering(f"{base}/healthz")
        request = hook_request(hookInstance=f"abc\r\n{forged}\u202e")
        assert httpx.post(f"{base}/cds-services/{ORDER_SELECT}", json=request, timeout=30).status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert not any(line.startswith(forged) for line in stderr.splitlines())
    assert f"hookInstance=abc\\x0d\\x0a{forged}\\u202e" in stderr
