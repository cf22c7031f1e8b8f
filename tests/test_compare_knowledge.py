"""`cds-spine compare-knowledge`: a change to cards/ replayed over the past before it goes live, run as an
operator runs it (on Spark: test_spark_cluster). A candidate that raises the ESI's required days from 28 to
56 must change exactly the ESIs that had 28 to 55 days of conservative therapy, and nothing else."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cli import ROOT, run_cli
from fastapi.testclient import TestClient
from reporting import AUDIT_USERS, KEY

sys.path.insert(0, str(ROOT))
from bench.bulk_export import write_export  # noqa: E402
from cds_spine.app import create_app  # noqa: E402
from cds_spine.settings import Settings  # noqa: E402

TODAY = date(2026, 6, 30)
PLAIN = {"CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS": "true"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export"), 400, seed=23, today=TODAY, files_per_type=2)


@pytest.fixture(scope="module")
def cards(tmp_path_factory) -> tuple[Path, Path]:
    """The installed cards/ and a candidate copy whose ESI needs 56 days of conservative therapy."""
    baseline = Settings().knowledge_dir()
    candidate = tmp_path_factory.mktemp("candidate") / "cards"
    shutil.copytree(baseline, candidate)
    pathway = candidate / "pathway.yaml"
    text = pathway.read_text()
    assert text.count("    min_conservative_days: 28") == 2  # the ESI's and the regenerative injection's
    pathway.write_text(text.replace("  esi:\n    min_conservative_days: 28", "  esi:\n    min_conservative_days: 56", 1))
    return baseline, candidate


def compare_knowledge(export: Path, baseline: Path, candidate: Path, out: Path, *options: str):
    return run_cli("compare-knowledge", str(export), "--baseline", str(baseline), "--candidate", str(candidate),
                   "--out", str(out), "--quiet", *options, **PLAIN)


@pytest.fixture(scope="module")
def compared(generated, cards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compared")
    result = compare_knowledge(generated, *cards, out, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "changed; cards per 1,000 procedures" in result.stdout
    return out


def changes(out: Path) -> list[dict[str, str]]:
    with (out / "changes.csv").open(encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_a_raised_threshold_changes_exactly_the_esis_it_should(compared):
    baseline = pq.read_table(compared / "baseline" / "rows.parquet").to_pylist()
    candidate = {(r["patient"], r["procedure"]): r for r in pq.read_table(compared / "candidate" / "rows.parquet").to_pylist()}
    expected = {(r["patient"], r["procedure"]) for r in baseline
                if r["kind"] == "esi" and r["decision"] == "met" and 28 <= r["conservativeDays"] < 56}
    found = changes(compared)
    assert expected and {(row["patient"], row["procedure"]) for row in found} == expected
    for row in found:
        assert (row["baselineDecision"], row["candidateDecision"]) == ("met", "not-met")
        assert row["findingsAdded"] == "conservative-short" and row["findingsRemoved"] == ""
        # the new finding leads, unless a finding that outranks it already led (an anticoagulant, image first)
        outranking = {"anticoagulant", "anticoagulant-long-term", "image-first"}
        assert row["candidateCard"] == (row["baselineCard"] if row["baselineCard"] in outranking
                                        else "conservative-short")
    assert len(candidate) == len(baseline)
    summary = json.loads((compared / "summary.json").read_text())
    assert summary["changed"] == len(expected) and summary["procedures"] == len(baseline)
    assert summary["decisionChanges"] == {"met -> not-met": len(expected)}
    assert summary["findings"] == {"appear": {"conservative-short": len(expected)}, "disappear": {}}
    base, cand = summary["baseline"], summary["candidate"]
    assert cand["decisions"]["not-met"] - base["decisions"]["not-met"] == len(expected)
    assert cand["cardsPer1000"] > base["cardsPer1000"] and base["knowledgeVersion"] != cand["knowledgeVersion"]
    esi = "conservative-therapy"
    assert cand["components"][esi]["numerator"] == base["components"][esi]["numerator"] - len(expected)
    report = (compared / "report.md").read_text()
    assert f"**{len(expected):,} procedures change**" in report and "Decision met -> not-met" in report
    # Issue 34, point 9: what differs between the versions, and every rate with its true denominator
    assert summary["differences"] == ["`rules.esi.min_conservative_days`: 28 -> 56"]
    assert "- `rules.esi.min_conservative_days`: 28 -> 56" in report
    component = base["components"]["overall"]
    scored = component["denominator"] - component["excluded"]
    assert f"({component['numerator']} of {scored}" in report
    assert component["excluded"] == 0 or f"; {component['excluded']} excluded)" in report


def test_an_invalid_candidate_is_refused_as_start_up_refuses_it(generated, cards, tmp_path):
    broken = tmp_path / "cards"
    shutil.copytree(cards[1], broken)
    (broken / "pathway.yaml").write_text((broken / "pathway.yaml").read_text().replace(
        "max_sessions_per_region: 4", "max_sessions_per_region: many"))
    result = compare_knowledge(generated, cards[0], broken, tmp_path / "out")
    assert result.returncode == 2
    assert f"invalid clinical knowledge (--candidate {broken})" in result.stderr
    assert "rules.esi.max_sessions_per_region" in result.stderr and not (tmp_path / "out").exists()


def test_the_audit_reports_open_both_runs_of_a_comparison(compared, knowledge, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(compared, runs / "esi-56-days")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'audit.db'}", audit_users=AUDIT_USERS, bulk_runs_dir=runs)
    auth = {"Authorization": f"Bearer {KEY}"}
    summary = json.loads((compared / "summary.json").read_text())
    with TestClient(create_app(settings, knowledge)) as client:
        listed = {run["id"]: run for run in client.get("/audit/bulk-runs", headers=auth).json()["runs"]}
        assert set(listed) == {"esi-56-days.baseline", "esi-56-days.candidate"}
        for side in ("baseline", "candidate"):
            opened = client.get("/audit/summary", params={"run": f"esi-56-days.{side}"}, headers=auth).json()
            assert opened["notMet"] == summary[side]["decisions"].get("not-met", 0)
            assert listed[f"esi-56-days.{side}"]["knowledgeVersion"] == summary[side]["knowledgeVersion"]
        missing = client.get("/audit/summary", params={"run": "esi-56-days.other"}, headers=auth)
        assert missing.status_code == 404
