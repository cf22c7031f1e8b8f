"""The command line: evaluate, check-config, and serve as a real HTTP server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cli import CDS_SPINE, PATIENCE, ROOT, VALUESET_COUNT, clean_env, free_port, run_cli, serving, wait_until_answering
from tokens import SigningKey, jwks

from cds_spine.audit.db import HEAD
from cds_spine.cli.check import in_container

EXAMPLES = ROOT / "examples"
INDEX = json.loads((EXAMPLES / "index.json").read_text())


def test_evaluate_prints_the_cards_of_a_request_file():
    result = run_cli("evaluate", "examples/requests/p01-esi-nothing-tried.json", "--as-of", INDEX["asOf"])
    assert result.returncode == 0, result.stderr
    [card] = json.loads(result.stdout)["cards"]
    assert card["indicator"] == "warning" and "lumbar ESI" in card["summary"]


def test_evaluate_as_of_another_day_changes_the_answer():
    # A year and a half later the physical therapy is outside the 12-month lookback.
    result = run_cli("evaluate", "examples/requests/p02-esi-after-pt.json", "--as-of", "2028-06-01")
    assert json.loads(result.stdout)["cards"][0]["summary"].startswith("No conservative therapy documented")


def test_evaluate_a_bad_request_prints_an_operation_outcome(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hook": "order-sign", "context": {}}))
    result = run_cli("evaluate", str(bad))
    assert result.returncode == 1
    outcome = json.loads(result.stderr)
    assert {tuple(i["expression"]) for i in outcome["issue"]} == {("hookInstance",)}


def test_check_config_reports_the_packed_knowledge_and_a_current_store(postgres_schema):
    url = postgres_schema + "&password=s3cret"  # issue 32, M4: a password as a query parameter is never printed
    assert run_cli("migrate", CDS_SPINE_DATABASE_URL=url).returncode == 0
    result = run_cli("check-config", CDS_SPINE_DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert "password=***" in result.stdout and "s3cret" not in result.stdout + result.stderr
    assert "site-packages/cds_spine/cards" in result.stdout and f"{VALUESET_COUNT} value sets" in result.stdout
    assert f"reachable, schema at {HEAD}" in result.stdout
    assert ("code systems: ICD-10-CM, ICD-9-CM, SNOMED CT, RxNorm, CPT, LOINC, DICOM, AHRQ CDS Connect Pain Management "
            "Summary; 2 local systems mapped") in result.stdout
    assert "cds_spine_unplaced_code_systems_total" in result.stdout and "CDS_SPINE_LOCAL_CODE_SYSTEMS" in result.stdout


def test_check_config_reports_and_checks_the_sites_local_code_systems(postgres_schema, tmp_path):
    site = tmp_path / "local-code-systems.yaml"
    site.write_text("local:\n  urn:oid:1.2.840.114350.1.13.999.2.7.2.728286: http://hl7.org/fhir/sid/icd-10-cm\n")
    assert run_cli("migrate", CDS_SPINE_DATABASE_URL=postgres_schema).returncode == 0
    result = run_cli("check-config", CDS_SPINE_DATABASE_URL=postgres_schema, CDS_SPINE_LOCAL_CODE_SYSTEMS=str(site))
    assert result.returncode == 0, result.stderr
    assert f"3 local systems mapped to them (1 from {site})" in result.stdout
    site.write_text("local:\n  urn:oid:1.2.3: icd10\nextra: 1\n")
    result = run_cli("check-config", CDS_SPINE_DATABASE_URL=postgres_schema, CDS_SPINE_LOCAL_CODE_SYSTEMS=str(site))
    assert result.returncode == 2 and str(site) in result.stderr and "extra" in result.stderr
    # Issue 32, L5: a standard code added to a value set (M54.16 among the red flags would waive the conservative
    # requirement for every radiculopathy), directly or through a local system mapped to ICD-10-CM, is refused.
    for system in ("http://hl7.org/fhir/sid/icd-10-cm", "urn:oid:1.2.840.114350.1.13.999.2.7.2.728286"):
        site.write_text("local:\n  urn:oid:1.2.840.114350.1.13.999.2.7.2.728286: http://hl7.org/fhir/sid/icd-10-cm\n"
                        f"codes:\n  red-flag-cauda-equina-cord-compression:\n    - {{system: '{system}', code: M54.16}}\n")
        result = run_cli("check-config", CDS_SPINE_DATABASE_URL=postgres_schema, CDS_SPINE_LOCAL_CODE_SYSTEMS=str(site))
        assert result.returncode == 2 and f"red-flag-cauda-equina-cord-compression: {system}|M54.16: a standard " \
                                          f"code" in result.stderr


@pytest.mark.parametrize("settings, code, message", [
    ({"CDS_SPINE_DATABASE_URL": "postgresql://svc:pw@127.0.0.1:1/audit"}, 2,
     "error: the audit store postgresql+psycopg://svc:***@127.0.0.1:1/audit cannot be used"),
    ({"CDS_SPINE_PUBLIC_BASE_URL": "cds.example.org"}, 2, "CDS_SPINE_PUBLIC_BASE_URL"),
    ({"CDS_SPINE_AUDIT_USERS": "not json"}, 2, "CDS_SPINE_AUDIT_USERS"),
    ({"CDS_SPINE_AUDIT_USERS": '[["a", "boss"]]'}, 2, "CDS_SPINE_AUDIT_USERS"),
    ({"CDS_SPINE_AUDIT_AUTH": "oidc"}, 2, "needs CDS_SPINE_AUDIT_OIDC_ISSUER"),
    ({"CDS_SPINE_AUDIT_HASH_KEY": "short"}, 2, "error: CDS_SPINE_AUDIT_HASH_KEY is too short"),
    ({"CDS_SPINE_AUTH": "required", "CDS_SPINE_SANDBOX": "true", "CDS_SPINE_PUBLIC_BASE_URL": "https://cds.example.org",
      "CDS_SPINE_DATABASE_URL": "sqlite:///{tmp}/audit.db"}, 1,
     "warning: the audit store is SQLite with authentication required"),
    ({"CDS_SPINE_DATABASE_URL": "{pg}"}, 1, "(`cds-spine serve` migrates it at start)"),
    ({"CDS_SPINE_DATABASE_URL": "{pg}", "CDS_SPINE_SCHEMA_MANAGED": "true"}, 2, "run `cds-spine migrate`"),
    ({"CDS_SPINE_SMART_CLIENT_ID": "spine-timeline"}, 2, "CDS_SPINE_SMART_CLIENT_ID needs CDS_SPINE_PUBLIC_BASE_URL"),
    ({"CDS_SPINE_SMART_CLIENT_ID": "spine-timeline", "CDS_SPINE_PUBLIC_BASE_URL": "https://cds.example.org"}, 1,
     "warning: the pathway timeline is on but no FHIR server may launch it"),
    ({"CDS_SPINE_SMART_FHIR_SERVERS": "http://ehr.example.org/fhir"}, 2, "CDS_SPINE_SMART_FHIR_SERVERS: must be https"),
])
def test_check_config_errors_and_warnings_have_their_exit_codes(postgres_schema, tmp_path, settings, code, message):
    env = {key: value.format(tmp=tmp_path, pg=postgres_schema) for key, value in settings.items()}
    env.setdefault("CDS_SPINE_DATABASE_URL", postgres_schema)
    result = run_cli("check-config", **env)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "pw@" not in result.stderr + result.stdout


def test_check_config_warns_about_sqlite_in_a_container(tmp_path):
    result = run_cli("check-config", CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}")
    warned = "warning: the audit store is SQLite inside a container" in result.stderr
    assert (result.returncode, warned) == ((1, True) if in_container() else (0, False))
    assert "not created yet" in result.stdout and not (tmp_path / "audit.db").exists()


def test_cards_dir_setting_points_to_another_copy(tmp_path):
    copy = tmp_path / "cards"
    subprocess.run(["cp", "-r", str(ROOT / "cards"), str(copy)], check=True)
    (copy / "pathway.yaml").write_text((copy / "pathway.yaml").read_text().replace(
        "min_conservative_days: 28", "min_conservative_days: 3"))
    result = run_cli("evaluate", "examples/requests/p03-esi-short-nsaid.json", "--as-of", INDEX["asOf"],
                     CDS_SPINE_CARDS_DIR=str(copy))
    cards = json.loads(result.stdout)["cards"]  # met with 3 days: only the imaging and the scores are asked for
    assert [card["source"]["topic"]["code"] for card in cards] == ["imaging-undocumented"]
    assert "No baseline pain and function score" in cards[0]["detail"]


def test_bad_knowledge_stops_the_service_with_file_and_field(tmp_path):
    copy = tmp_path / "cards"
    subprocess.run(["cp", "-r", str(ROOT / "cards"), str(copy)], check=True)
    (copy / "pathway.yaml").write_text((copy / "pathway.yaml").read_text().replace(
        "min_days_between: 14", "min_days_between: soon"))
    for command in (["check-config"], ["serve", "--port", "1"]):
        result = run_cli(*command, CDS_SPINE_CARDS_DIR=str(copy))
        assert result.returncode == 2
        assert "pathway.yaml" in result.stderr and "rules.esi.min_days_between" in result.stderr


def test_bad_setting_is_named():
    result = run_cli("check-config", CDS_SPINE_FHIR_TIMEOUT_SECONDS="soon")
    assert result.returncode == 2 and "CDS_SPINE_FHIR_TIMEOUT_SECONDS" in result.stderr


@pytest.fixture
def server(tmp_path):
    with serving(tmp_path) as base:
        yield base


def test_serve_answers_over_real_http(server):
    services = httpx.get(f"{server}/cds-services").json()["services"]
    assert len(services) == 3
    request = json.loads((EXAMPLES / "requests" / "p09-unrelated-order.json").read_text())
    response = httpx.post(f"{server}/cds-services/spine-pathway-order-select", json=request)
    assert response.status_code == 200 and response.json() == {"cards": []}


def test_make_run_binds_cds_spine_port_and_installs_only_the_service(tmp_path):
    port = free_port()
    process = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, start_new_session=True,
                               env=clean_env(CDS_SPINE_PORT=str(port),
                                             CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("make run did not serve on CDS_SPINE_PORT")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    # What `make run` would do from scratch: the service and its dependencies, never the test tools.
    dry = subprocess.run(["make", "-n", "-B", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--require-hashes -r requirements.lock" in dry and "[test]" not in dry


def _trusted_clients(folder: Path, extra: str = "") -> Path:
    (folder / "ehr-jwks.json").write_text(json.dumps(jwks(SigningKey.ec("k1"))))
    path = folder / "trusted-clients.yaml"
    path.write_text("- iss: https://ehr.example.org\n  jwks_file: ehr-jwks.json\n  algorithms: [ES384]\n"
                    "- iss: https://other.example.org\n  jwks_url: https://other.example.org/jwks.json\n" + extra)
    return path


def test_check_config_says_whom_it_trusts_and_what_it_serves_with(postgres_schema, tmp_path):
    trusted = _trusted_clients(tmp_path)
    assert run_cli("migrate", CDS_SPINE_DATABASE_URL=postgres_schema).returncode == 0
    result = run_cli("check-config", CDS_SPINE_DATABASE_URL=postgres_schema, CDS_SPINE_AUTH="required",
                     CDS_SPINE_TRUSTED_CLIENTS=str(trusted), CDS_SPINE_PUBLIC_BASE_URL="https://cds.example.org",
                     CDS_SPINE_CORS_ORIGINS="https://sandbox.hospital.example", CDS_SPINE_FORWARDED_ALLOW_IPS="10.0.0.0/8",
                     CDS_SPINE_SMART_CLIENT_ID="spine-timeline", CDS_SPINE_SMART_FHIR_SERVERS="https://ehr.example.org/fhir",
                     CDS_SPINE_SECRET_KEYS="0123456789abcdef" * 4)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "authentication: required (a JWT from a trusted client, aud = https://cds.example.org + path)" in lines
    assert f"trusted issuer: https://ehr.example.org (pinned keys in {tmp_path / 'ehr-jwks.json'}; algorithms ES384; " \
           f"no FHIR server (fhir_servers): its calls are answered from prefetch alone)" in lines
    assert any(line.startswith("trusted issuer: https://other.example.org (keys from https://other.example.org/jwks"
                               ".json; algorithms ES256, ES384") for line in lines)
    assert "public base URL: https://cds.example.org" in lines
    assert any(line.startswith("CORS origins: https://sandbox.hospital.example") for line in lines)
    assert "forwarded headers trusted from: 10.0.0.0/8" in lines
    assert ("pathway timeline: on, client id spine-timeline, launch URL https://cds.example.org/app/launch, redirect URI "
            "https://cds.example.org/app/callback; cards link to it; launched from: https://ehr.example.org/fhir") in lines


def test_check_config_lists_every_error_at_once_and_refuses_placeholders(tmp_path):
    trusted = _trusted_clients(tmp_path, "- iss: https://CHANGE-ME.example.org\n  jwks_url: https://x.example.org/k\n")
    result = run_cli("check-config", CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}", CDS_SPINE_AUTH="required",
                     CDS_SPINE_TRUSTED_CLIENTS=str(trusted), CDS_SPINE_FHIR_TIMEOUT_SECONDS="soon",
                     CDS_SPINE_AUDIT_HASH_KEY="CHANGE-ME-at-least-32-random-characters-long",
                     CDS_SPINE_CORS_ORIGINS="https://sandbox.hospital.example/")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 5, errors
    for expected in ("CDS_SPINE_FHIR_TIMEOUT_SECONDS", "CDS_SPINE_AUDIT_HASH_KEY: still holds the shipped "
                     "placeholder CHANGE-ME", "CDS_SPINE_PUBLIC_BASE_URL is not set",
                     f"CDS_SPINE_TRUSTED_CLIENTS={trusted} still holds the shipped placeholder",
                     "'https://sandbox.hospital.example/' is not an origin"):
        assert any(expected in error for error in errors), expected
    assert "random-characters-long" not in result.stdout + result.stderr  # a secret is never shown
    assert "authentication: required" in result.stdout and "disabled" not in result.stdout


def test_serve_logs_whom_it_trusts_at_start_up(tmp_path):
    trusted = _trusted_clients(tmp_path)
    port = free_port()
    process = subprocess.Popen([CDS_SPINE, "serve", "--port", str(port)], cwd=ROOT, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env(
                                   CDS_SPINE_AUTH="required", CDS_SPINE_TRUSTED_CLIENTS=str(trusted),
                                   CDS_SPINE_PUBLIC_BASE_URL="https://cds.example.org",
                                   CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}"))
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "authentication: required (a JWT from a trusted client, aud = https://cds.example.org + path)" in stderr
    assert "trusted issuer: https://ehr.example.org (pinned keys in" in stderr
    assert "trusted issuer: https://other.example.org (keys from https://other.example.org/jwks.json" in stderr


def test_check_config_warns_of_trust_meant_for_a_test_machine(tmp_path):
    """Issue 32, L4: the local test issuer, and the public sandbox on an address others can reach."""
    folder = tmp_path / "issuer"
    assert run_cli("test-token", "https://cds.example.org/cds-services", "--folder", str(folder)).returncode == 0
    result = run_cli("check-config", CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}", CDS_SPINE_AUTH="required",
                     CDS_SPINE_HOST="0.0.0.0", CDS_SPINE_SANDBOX="true",
                     CDS_SPINE_TRUSTED_CLIENTS=str(folder / "trusted-clients.yaml"),
                     CDS_SPINE_PUBLIC_BASE_URL="https://cds.example.org")
    assert result.returncode == 1, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any("the local test issuer" in line and "never with real patients" in line for line in warnings)
    assert any("CDS_SPINE_SANDBOX=true on 0.0.0.0" in line for line in warnings)


def test_a_port_in_use_is_named_with_the_setting_that_moves_it(tmp_path):
    """Issue 34, point 3: not "[Errno 98] address already in use" and a make error."""
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}")
    assert result.returncode == 2
    assert f"cds-spine: port {port} on 127.0.0.1 is in use" in result.stderr and "CDS_SPINE_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_make_run_says_where_the_dashboard_is_and_the_page_says_how_to_open_it(tmp_path):
    """Issue 34, point 1: after `make run`, /dashboard answered a bare 404 "not found" and the log said nothing."""
    port = free_port()
    process = subprocess.Popen([CDS_SPINE, "serve", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env=clean_env(CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}"))
    try:
        assert process.stdout is not None
        said = next(line for line in process.stdout if "the dashboard:" in line or process.poll() is not None)
        assert f"the dashboard: http://127.0.0.1:{port}/dashboard (no audit readers yet" in said
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", "the service")
        page = httpx.get(f"http://127.0.0.1:{port}/dashboard")
        assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
        assert "The audit has no readers yet" in page.text and "cds-spine audit-key" in page.text
        assert "CDS_SPINE_AUDIT_USERS" in page.text
    finally:
        process.terminate()
        process.communicate(timeout=PATIENCE)


def test_check_config_explains_a_wrong_audit_user_and_invents_no_follow_on_error(postgres_schema):
    """Issue 34, point 7: the shipped placeholder got "String should match pattern '^[0-9a-f]{64}$'", then
    "audit readers: none" although the variable was set."""
    placeholder = '[{"name": "CHANGE-ME", "role": "viewer", "key_sha256": "CHANGE-ME-64-hex-characters"}]'
    result = run_cli("check-config", CDS_SPINE_AUDIT_USERS=placeholder, CDS_SPINE_DATABASE_URL=postgres_schema)
    assert result.returncode == 2
    assert ("error: CDS_SPINE_AUDIT_USERS: entry 1, key_sha256: key_sha256 is the SHA-256 of the user's key, 64 "
            "lower-case hexadecimal characters, never the key itself: `cds-spine audit-key NAME ROLE`") in result.stderr
    assert "should match pattern" not in result.stderr
    assert "audit readers: not checked (CDS_SPINE_AUDIT_USERS is wrong: see the error)" in result.stdout
    wrong_store = run_cli("check-config", CDS_SPINE_DATABASE_URL="mysql://nowhere/db", CDS_SPINE_SCHEMA_MANAGED="true")
    assert "CDS_SPINE_DATABASE_URL: the audit store is SQLite" in wrong_store.stderr  # not a traceback
    assert "SQLite store does not exist" not in wrong_store.stderr and "Traceback" not in wrong_store.stderr
    assert "audit store: not checked" in wrong_store.stdout
