"""The command line: evaluate, check-config, and serve as a real HTTP server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx
import pytest

from cli import ROOT, VALUESET_COUNT, clean_env, free_port, run_cli, serving

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


def test_check_config_reports_the_packed_knowledge():
    result = run_cli("check-config")
    assert result.returncode == 0, result.stderr
    assert "site-packages/cds_spine/cards" in result.stdout and f"{VALUESET_COUNT} value sets" in result.stdout


def test_cards_dir_setting_points_to_another_copy(tmp_path):
    copy = tmp_path / "cards"
    subprocess.run(["cp", "-r", str(ROOT / "cards"), str(copy)], check=True)
    (copy / "pathway.yaml").write_text((copy / "pathway.yaml").read_text().replace(
        "min_conservative_days: 28", "min_conservative_days: 3"))
    result = run_cli("evaluate", "examples/requests/p03-esi-short-nsaid.json", "--as-of", INDEX["asOf"],
                     CDS_SPINE_CARDS_DIR=str(copy))
    assert json.loads(result.stdout) == {"cards": []}


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
        deadline = time.monotonic() + 120
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
    assert "pip install --quiet ." in dry and "[test]" not in dry
