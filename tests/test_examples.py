"""examples/: up to date with the stories, valid FHIR, and each gets its expected decision."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from cli import ROOT, run_cli
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from support import ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW, call, meets_expectation

from cds_spine.app import create_app
from cds_spine.settings import Settings

INDEX = json.loads((ROOT / "examples" / "index.json").read_text())


@pytest.mark.slow  # runs the command line in a process of its own
def test_examples_are_up_to_date(tmp_path):
    subprocess.run([sys.executable, "tools/build_examples.py", "--out", str(tmp_path), "--as-of", INDEX["asOf"]],
                   cwd=ROOT, check=True, capture_output=True)
    for built in tmp_path.rglob("*.json"):
        committed = ROOT / "examples" / built.relative_to(tmp_path)
        assert committed.read_text() == built.read_text(), f"{committed} is stale: run tools/build_examples.py --out examples --as-of {INDEX['asOf']}"


def test_examples_cover_the_stories():
    stories = {example["id"] for example in INDEX["examples"]}
    assert {"p01-esi-nothing-tried", "p02-esi-after-pt", "p03-esi-short-nsaid", "p04-esi-cauda-equina",
            "p05-esi-fifth-in-a-year", "p06-surgery-after-pt-and-esi"} <= stories


@pytest.mark.parametrize("example", INDEX["examples"], ids=lambda e: e["id"])
def test_bundle_is_a_valid_r4_transaction(example):
    bundle = Bundle.model_validate_json((ROOT / "examples" / example["bundle"]).read_text())
    assert bundle.type == "transaction" and all(entry.request.method == "PUT" for entry in bundle.entry)


@pytest.fixture(scope="module")
def service_on_the_examples_day(knowledge, tmp_path_factory):
    """The service, its clock at the day the examples were written for (the CLI's `evaluate --as-of` is tested
    in test_cli)."""
    as_of = datetime.fromisoformat(INDEX["asOf"]).replace(hour=12, tzinfo=UTC)
    store = tmp_path_factory.mktemp("examples") / "audit.db"
    with TestClient(create_app(Settings(database_url=f"sqlite:///{store}"), knowledge, clock=lambda: as_of)) as client:
        yield client


@pytest.mark.parametrize("example", INDEX["examples"], ids=lambda e: e["id"])
def test_request_gets_its_expected_decision(example, service_on_the_examples_day):
    request = json.loads((ROOT / "examples" / example["request"]).read_text())
    service_id = {"order-select": ORDER_SELECT, "order-sign": ORDER_SIGN, "patient-view": PATIENT_VIEW}[request["hook"]]
    cards = call(service_on_the_examples_day, service_id, request).json()["cards"]
    assert meets_expectation(example["expect"]["cards"], cards), (example, cards)


@pytest.mark.slow  # runs the command line in a process of its own
def test_examples_are_written_as_of_today_by_default_and_get_their_decision_today(tmp_path):
    subprocess.run([sys.executable, "tools/build_examples.py", "--out", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["asOf"] == datetime.now(UTC).date().isoformat()
    [p03] = [e for e in index["examples"] if e["id"] == "p03-esi-short-nsaid"]
    result = run_cli("evaluate", str(tmp_path / p03["request"]), "--as-of", "today")
    assert [card["indicator"] for card in json.loads(result.stdout)["cards"]] == ["warning"]


@pytest.mark.slow  # runs the command line in a process of its own
def test_as_of_must_be_a_day_or_today():
    result = run_cli("evaluate", "examples/requests/p01-esi-nothing-tried.json", "--as-of", "last tuesday")
    assert result.returncode == 2
    assert "is not a date" in result.stderr and "--as-of" in result.stderr


@pytest.mark.slow  # runs the Makefile's recipe in a process of its own
def test_make_examples_leaves_the_tracked_files_as_they_are():
    """Issue 34, point 2: `make examples` rewrote 35 tracked files; it writes today's copies where git ignores
    them, so `git status` is clean after the README's first step."""
    recipe = (ROOT / "Makefile").read_text().split("\nexamples:", 1)[1].splitlines()[1].strip()
    command = recipe.replace("$(BIN)/python", sys.executable).split()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    today = json.loads((ROOT / "examples" / "today" / "index.json").read_text())
    assert today["asOf"] == datetime.now(UTC).date().isoformat()
    status = subprocess.run(["git", "status", "--porcelain", "--", "examples"], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert status.stdout == ""
