"""`cds-spine audit-bulk`: the pathway over a FHIR Bulk Data export, on the local engine and on Spark.

Run as an operator runs it (the installed console script), on a generated export (bench/bulk_export.py)
and on the real-shaped export in ../shared/real-data/ (read in place; a copy with ESIs added, since
Synthea has none, is written to a temporary folder). The two engines must agree row for row, every
completed ESI and surgery of the period must have its row, and the live service must decide each
order as the bulk row says.
"""
from __future__ import annotations

import copy
import gzip
import json
import shutil
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from browser import CHROMIUM_FLAGS, apply, chart_data
from cli import PATIENCE, ROOT, run_cli, serving
from fastapi.testclient import TestClient
from playwright.sync_api import expect, sync_playwright
from real_records import EXPORT, export, order, read_export, request
from reporting import AUDIT_USERS, AUDIT_USERS_ENV, KEY, VIEWER_KEY

sys.path.insert(0, str(ROOT))
from bench.bulk_export import GUIDED_ESI, REGENERATIVE, SURGERY, UNGUIDED_ESI, VALUESETS, write_export  # noqa: E402
from cds_spine.app import create_app  # noqa: E402
from cds_spine.audit import runs as runs_module  # noqa: E402
from cds_spine.audit.bulk_rows import BulkRow  # noqa: E402
from cds_spine.audit.orders import ReportPeriod  # noqa: E402
from cds_spine.audit.runs import RunOrders, decision  # noqa: E402
from cds_spine.pathway.record import Code  # noqa: E402
from cds_spine.privacy import PatientIdHasher  # noqa: E402
from cds_spine.settings import Settings  # noqa: E402

TODAY = date(2026, 6, 30)
SINCE, UNTIL = "2023-01-01", "2026-06-30"
PLAIN = {"CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS": "true"}
HASH_KEY = "bulk-test-key-0123456789abcdef0123456789"
TIMING = ("ranAt", "seconds", "engine")


def audit_bulk(export: Path, out: Path, *options: str, **settings: str):
    return run_cli("audit-bulk", str(export), "--out", str(out), *options, **settings)


def rows(out: Path) -> list[dict]:
    return pq.read_table(out / "rows.parquet").to_pylist()


def summary(out: Path) -> dict:
    found = json.loads((out / "summary.json").read_text())
    return {key: value for key, value in found.items() if key not in TIMING}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """500 patients, two files per type, with its manifest."""
    return write_export(tmp_path_factory.mktemp("export"), 500, seed=11, today=TODAY, files_per_type=2)


@pytest.fixture(scope="module")
def local_run(generated, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    result = audit_bulk(generated, out, "--since", SINCE, "--until", UNTIL, "--workers", "2", **PLAIN)
    assert result.returncode == 0, result.stderr
    assert "resources read (" in result.stderr and "patients audited (" in result.stderr  # the progress line
    return out


def test_every_completed_esi_regenerative_injection_and_surgery_of_the_period_has_its_row(generated, local_run):
    patients, _ = read_export(generated.parent)
    codes = {code for _, code, _ in GUIDED_ESI + UNGUIDED_ESI + SURGERY + REGENERATIVE}
    expected = sorted((pid, f"Procedure/{r['id']}") for pid, resources in patients.items()
                      for r in resources.get("Procedure", []) if r["status"] == "completed"
                      and r["code"]["coding"][0]["code"] in codes and SINCE <= r["performedDateTime"][:10] <= UNTIL)
    found = rows(local_run)
    assert sorted((row["patient"], row["procedure"]) for row in found) == expected
    assert len(expected) > 80
    done = summary(local_run)
    assert done["procedures"] == len(found) and done["patients"] == len(patients)
    lines = sum(1 for path in generated.parent.glob("*.ndjson.gz") for _ in gzip.open(path))
    assert done["read"]["lines"] == lines and done["read"]["problems"] == {}
    assert {row["decision"] for row in found} == {"met", "not-met", "exempt", "stopped"}
    findings = {code for row in found for code in row["findings"]}
    assert {"conservative-missing", "conservative-short", "esi-too-soon", "no-imaging-guidance", "red-flag",
            "red-flag-injection", "no-qualifying-diagnosis"} <= findings
    stopped = [row for row in found if row["decision"] == "stopped"]
    assert all(row["component:no-red-flag-at-injection"] == "not-met" and row["component:overall"] == "not-met"
               for row in stopped)


def test_rows_csv_and_parquet_carry_the_same_rows_and_the_summary_their_counts(local_run):
    parquet = rows(local_run)
    csv_lines = (local_run / "rows.csv").read_text().splitlines()
    assert len(csv_lines) == len(parquet) + 1
    header = csv_lines[0].split(",")
    assert header[:9] == ["patient", "procedure", "date", "asOf", "kind", "region", "detail", "code", "decision"]
    first = dict(zip(header, csv_lines[1].split(","), strict=False))
    assert first["findings"] == " ".join(parquet[0]["findings"]) and first["patient"] == parquet[0]["patient"]
    done = summary(local_run)
    assert {row["knowledgeVersion"] for row in parquet} == {done["knowledgeVersion"]}  # every row stamped
    assert done["met"] == sum(row["decision"] == "met" for row in parquet)
    overall = done["components"]["overall"]
    assert overall["numerator"] == sum(row["component:overall"] == "met" for row in parquet)
    assert overall["excluded"] == sum(row["component:overall"] == "excluded" for row in parquet)
    by_month = done["by"]["month"]
    assert sum(group["orders"] for group in by_month) == len(parquet)
    report = json.loads((local_run / "measure-report.json").read_text())
    assert report["resourceType"] == "MeasureReport" and report["period"] == {"start": SINCE, "end": UNTIL}
    [group] = [g for g in report["group"] if g["id"] == "overall"]
    counts = {p["code"]["coding"][0]["code"]: p["count"] for p in group["population"]}
    assert counts["numerator"] == overall["numerator"] and counts["initial-population"] == len(parquet)


def _with_injections(target: Path) -> int:
    """The real export, with a lumbar ESI (a copy of one of the patient's real Procedures, its code changed)
    a week after the last back-pain or neck-pain event of each patient who has one."""
    for path in EXPORT.glob("*.ndjson.gz"):
        shutil.copy(path, target / path.name)
    patients, _ = export()
    added = []
    for patient_id, resources in sorted(patients.items()):
        spine = [r for r in resources.get("Condition", [])
                 if any(word in r["code"].get("text", "").lower() for word in ("back pain", "neck"))]
        procedures = [r for r in resources.get("Procedure", []) if "performedPeriod" in r]
        if spine and procedures:
            last = max(r.get("onsetDateTime", r.get("recordedDate", ""))[:10] for r in spine)
            injection = copy.deepcopy(procedures[-1])
            injection["id"] = f"esi-{patient_id}"
            injection["code"] = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64483",
                                             "display": "Transforaminal epidural injection with imaging, lumbar"}]}
            day = date.fromordinal(date.fromisoformat(last).toordinal() + 7).isoformat()
            injection["performedPeriod"] = {"start": f"{day}T10:00:00Z", "end": f"{day}T10:30:00Z"}
            added.append(injection)
    with gzip.open(target / "Procedure.001.ndjson.gz", "wt") as file:
        file.writelines(json.dumps(r) + "\n" for r in added)
    return len(added)


def test_both_engines_agree_on_the_real_shaped_export(tmp_path):
    plain = tmp_path / "plain"
    result = audit_bulk(EXPORT, plain, "--quiet", CDS_SPINE_AUDIT_HASH_KEY=HASH_KEY)
    assert result.returncode == 0, result.stderr
    done = summary(plain)
    assert done["read"]["lines"] == 15_286 and done["read"]["problems"] == {} and done["patients"] == 151
    assert done["procedures"] == 0  # Synthea models no ESI or spine surgery
    # Issue 34, point 8: said as the whole export's period, with why and what to do (it read "(today to today)")
    assert "0 procedures audited (the export's whole period)" in result.stdout
    assert "No completed ESI, regenerative-injection or spine-surgery Procedure in the export's whole period: the " \
           "export holds" in result.stdout and "Procedure" in result.stdout.split("holds", 1)[1]
    assert "bench.bulk_export" in result.stdout
    export = tmp_path / "export"
    export.mkdir()
    injected = _with_injections(export)
    assert injected > 10
    local, spark = tmp_path / "local", tmp_path / "spark"
    assert audit_bulk(export, local, "--quiet", CDS_SPINE_AUDIT_HASH_KEY=HASH_KEY).returncode == 0
    result = audit_bulk(export, spark, "--quiet", "--engine", "spark", CDS_SPINE_AUDIT_HASH_KEY=HASH_KEY)
    assert result.returncode == 0, result.stderr
    found = rows(local)
    assert len(found) == injected and found == rows(spark)
    assert summary(local) == summary(spark)
    hashed = {PatientIdHasher(HASH_KEY.encode())(procedure.removeprefix("Procedure/esi-"))
              for procedure in (row["procedure"] for row in found)}
    assert {row["patient"] for row in found} == hashed  # the live audit's keyed hash: the two can be joined
    assert any(row["conservativeEvidence"] for row in found)  # real therapy on record is read


def _replay(row: dict, resources: dict[str, list[dict]], medications: dict[str, dict]) -> dict:
    """An order-sign call on the procedure's code and body site (PRP's code is for any site) with the patient's
    whole record prefetched (Medications named by reference ride along, as `_include` brings them)."""
    system, code = row["code"].split("|")
    [done] = [r for r in resources["Procedure"] if f"Procedure/{r['id']}" == row["procedure"]]
    draft = {**order(code, system), **({"bodySite": done["bodySite"]} if "bodySite" in done else {})}
    return request(row["patient"], resources, draft=draft, medications=medications)


def test_the_live_service_decides_each_order_as_the_bulk_row_says(generated, local_run, knowledge, tmp_path):
    patients, medications = read_export(generated.parent)
    found = rows(local_run)
    chosen = {}
    for row in found:  # a row for each finding, then one per decision and finding combination
        for code in row["findings"]:
            chosen.setdefault(code, row)
    for row in found:
        chosen.setdefault((row["decision"], tuple(row["findings"])), row)
    chosen = list({id(row): row for row in chosen.values()}.values())[:30]
    assert {row["decision"] for row in chosen} == {"met", "not-met", "exempt", "stopped"}
    replayed = {code for row in chosen for code in row["findings"]}
    assert {code for row in found for code in row["findings"]} == replayed  # every finding the run gave is replayed
    assert {"esi-poor-response", "esi-response-documented", "esi-response-undocumented", "esi-baseline-undocumented",
            "fusion-smoker", "fusion-hba1c", "regenerative-before-esi", "regenerative-investigational",
            "red-flag-injection", "anticoagulant", "image-first", "imaging-undocumented", "conservative-short",
            "esi-symptoms-recent", "esi-too-soon", "no-qualifying-diagnosis"} <= replayed
    assert [row for row in chosen if patients[row["patient"]].get("ImagingStudy")  # a study answers it in both
            and "imaging-undocumented" not in row["findings"]]
    for index, row in enumerate(chosen):
        as_of = datetime.combine(date.fromisoformat(row["asOf"]), time(15), UTC)
        settings = Settings(database_url=f"sqlite:///{tmp_path / f'audit-{index}.db'}", audit_users=AUDIT_USERS,
                            audit_plain_patient_ids=True)
        with TestClient(create_app(settings, knowledge, clock=lambda as_of=as_of: as_of)) as client:
            answer = client.post("/cds-services/spine-pathway-order-sign",
                                 json=_replay(row, patients[row["patient"]], medications))
            assert answer.status_code == 200, answer.text
            listed = client.get("/audit/decisions", params={"pageSize": 1},
                                headers={"Authorization": f"Bearer {KEY}"}).json()
            call = client.get(f"/audit/decisions/{listed['items'][0]['id']}",
                              headers={"Authorization": f"Bearer {KEY}"}).json()
        [order] = call["orders"]
        assert call["receivedAt"].startswith(row["asOf"]) and call["patient"] == row["patient"]
        assert (order["decision"], [f["code"] for f in order["findings"]]) == (row["decision"], row["findings"])
        assert order["components"] == {k.removeprefix("component:"): v for k, v in row.items()
                                       if k.startswith("component:") and v is not None}
        assert (order["category"], order["region"], order["conservativeDays"]) == (
            row["kind"], row["region"], row["conservativeDays"])


def _bad_export(folder: Path) -> None:
    good = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.16"}]},
            "clinicalStatus": {"coding": [{"code": "active"}]}}
    esi = {"resourceType": "Procedure", "id": "x1", "status": "completed", "subject": {"reference": "Patient/p1"},
           "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64483"}]},
           "performedDateTime": "2026-03-01"}
    lines = [json.dumps(good), "{not json", json.dumps({"resourceType": "Nonsense", "id": "n"}), "[1, 2]",
             json.dumps({**good, "id": "c2", "subject": None}), json.dumps(esi), ""]
    (folder / "Condition.000.ndjson").write_text("\n".join(lines) + "\n")
    # One ESI each for 2,000 patients (one patient with 1,000 ESIs would take 13 s: each is assessed against the
    # record as it stood the day before, so a patient's audit grows with the square of their procedures).
    payload = gzip.compress(b"".join(json.dumps({**esi, "id": f"y{i}", "subject": {"reference": f"Patient/q{i}"}})
                                     .encode() + b"\n" for i in range(2000)))
    (folder / "Procedure.000.ndjson.gz").write_bytes(payload[: len(payload) // 2])


def test_bad_input_is_counted_with_file_and_line_and_the_rest_is_audited(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    _bad_export(export)
    result = audit_bulk(export, tmp_path / "out", "--quiet", **PLAIN)
    assert result.returncode == 1, result.stderr
    done = summary(tmp_path / "out")
    read = done["read"]
    assert read["problems"] == {"malformed-line": 2, "no-subject": 1, "truncated-gzip": 1, "unknown-type": 1}
    where = {(p["kind"], p["file"], p["line"]) for p in read["problemExamples"]}
    assert {("malformed-line", "Condition.000.ndjson", 2), ("unknown-type", "Condition.000.ndjson", 3),
            ("malformed-line", "Condition.000.ndjson", 4), ("no-subject", "Condition.000.ndjson", 5)} <= where
    [truncated] = [p for p in read["problemExamples"] if p["kind"] == "truncated-gzip"]
    assert truncated["file"] == "Procedure.000.ndjson.gz" and 1 < truncated["line"] <= 2000
    assert read["lines"] == 6 + truncated["line"] - 1  # every line read is counted, and where it stopped
    assert done["procedures"] == truncated["line"]  # the ESI of the plain file and each one read before the cut
    assert "Condition.000.ndjson line 2: malformed-line" in result.stderr


def test_an_export_that_cannot_be_read_is_one_line_and_exit_2(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"output": [{"type": "Patient", "url": "https://ehr.example/p.ndjson"}]}))
    result = audit_bulk(manifest, tmp_path / "out")
    assert result.returncode == 2 and "is not a local file: download the export's files first" in result.stderr
    result = audit_bulk(tmp_path / "nowhere", tmp_path / "out")
    assert result.returncode == 2 and "no such file or folder" in result.stderr
    result = audit_bulk(EXPORT, tmp_path / "out", "--since", "2026-02-01", "--until", "2026-01-01")
    assert result.returncode == 2 and "is after --until" in result.stderr


def test_the_generators_codes_are_in_the_value_sets_they_stand_for(knowledge):
    for valueset, codings in VALUESETS.items():
        for system, code, _ in codings:
            assert knowledge.find([Code(system, code)], valueset), (valueset, code)


@pytest.fixture
def runs(local_run, tmp_path) -> Path:
    """A runs folder (CDS_SPINE_BULK_RUNS_DIR) holding the local run as `past-2023`."""
    shutil.copytree(local_run, tmp_path / "runs" / "past-2023")
    (tmp_path / "runs" / "not-a-run").mkdir()
    return tmp_path / "runs"


def test_the_audit_reports_open_a_bulk_run_with_every_filter(runs, local_run, knowledge, tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'audit.db'}", audit_users=AUDIT_USERS,
                        bulk_runs_dir=runs)
    auth = {"Authorization": f"Bearer {KEY}"}
    done, found = summary(local_run), rows(local_run)
    with TestClient(create_app(settings, knowledge)) as client:
        [run] = client.get("/audit/bulk-runs", headers=auth).json()["runs"]
        assert (run["id"], run["procedures"], run["problems"]) == ("past-2023", len(found), 0)
        totals = client.get("/audit/summary", params={"run": "past-2023"}, headers=auth).json()
        assert {key: totals[key] for key in ("orders", "met", "notMet", "exempt", "components")} == {
            key: done[key] for key in ("orders", "met", "notMet", "exempt", "components")}
        assert totals["calls"] == 0  # a run has procedures, not calls
        by_month = client.get("/audit/report", params={"run": "past-2023", "by": "month"}, headers=auth).json()
        assert by_month["rows"] == done["by"]["month"]
        esi_days = sorted(row["date"] for row in found if row["kind"] == "esi")
        since = esi_days[len(esi_days) // 2]  # the later half of the run's ESIs
        esi = client.get("/audit/summary", params={"run": "past-2023", "kind": "esi", "since": since},
                         headers=auth).json()
        assert esi["orders"] == sum(row["kind"] == "esi" and row["date"] >= since for row in found) > 0
        short = client.get("/audit/summary", params={"run": "past-2023", "component": "imaging-guidance"},
                           headers=auth).json()
        assert short["orders"] == sum(row["component:imaging-guidance"] == "not-met" for row in found) > 0
        [by_knowledge] = client.get("/audit/report", params={"run": "past-2023", "by": "knowledge"}, headers=auth
                                    ).json()["rows"]
        assert (by_knowledge["group"], by_knowledge["orders"]) == (done["knowledgeVersion"], len(found))
        live = client.get("/audit/summary", headers=auth).json()
        assert live["orders"] == 0  # without `run`, the live audit
        for name in ("not-a-run", "..", "past-2023/../past-2023"):
            missing = client.get("/audit/summary", params={"run": name}, headers=auth)
            assert missing.status_code == 404 and "no bulk run" in missing.text


def test_a_bulk_runs_procedures_are_browsed_as_the_live_decisions_are(runs, local_run, knowledge, tmp_path):
    """Issue 34, point 11: a bulk run's drill-down. Its procedures are listed newest first, filtered as every
    report is, each opened in full; a viewer sees the run's plain patient ids as the audit's keyed hash."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'audit.db'}", audit_users=AUDIT_USERS,
                        bulk_runs_dir=runs)
    found = rows(local_run)
    run = {"run": "past-2023"}
    with TestClient(create_app(settings, knowledge)) as client:
        auth, viewer = {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"Bearer {VIEWER_KEY}"}
        listed = client.get("/audit/decisions", params={**run, "pageSize": 500}, headers=auth).json()
        assert listed["total"] == len(found) == len(listed["items"])
        days = [item["receivedAt"] for item in listed["items"]]
        assert days == sorted(days, reverse=True) and {item["source"] for item in listed["items"]} == {"bulk"}
        assert {item["orders"][0]["reference"] for item in listed["items"]} == {row["procedure"] for row in found}
        esi = client.get("/audit/decisions", params={**run, "kind": "esi"}, headers=auth).json()
        assert esi["total"] == sum(row["kind"] == "esi" for row in found) > 0
        unguided = client.get("/audit/decisions", params={**run, "component": "imaging-guidance"}, headers=auth).json()
        assert unguided["total"] == sum(row["component:imaging-guidance"] == "not-met" for row in found) > 0
        by_reference = {row["procedure"]: row for row in found}
        warned = next(item for item in listed["items"] if item["orders"][0]["findings"])
        row = by_reference[warned["orders"][0]["reference"]]
        detail = client.get(f"/audit/decisions/{warned['id']}", params=run, headers=auth).json()
        [order] = detail["orders"]
        assert [finding["code"] for finding in order["findings"]] == row["findings"]
        assert order["lead"] == next(code for code in row["findings"]
                                     if knowledge.config.findings[code].severity != "note")
        assert order["record"] == {"conservativeEvidence": row["conservativeEvidence"], "notCounted": row["notCounted"],
                                   "priorInjections": row["priorInjections"], "diagnoses": row["diagnoses"],
                                   "redFlags": row["redFlags"], "unreadable": row["unreadable"]}
        assert (detail["patient"], detail["performedOn"], detail["asOf"]) == (row["patient"], row["date"], row["asOf"])
        hashed = client.get(f"/audit/decisions/{warned['id']}", params=run, headers=viewer).json()["patient"]
        assert hashed != row["patient"] and len(hashed) == 24 and int(hashed, 16) >= 0  # the keyed hash
        assert client.get("/audit/decisions/999999", params=run, headers=auth).status_code == 404
        assert client.get("/audit/decisions/1", params={"run": "not-a-run"}, headers=auth).status_code == 404


def test_a_procedure_of_a_run_in_many_row_groups_opens_from_its_own(local_run, knowledge, tmp_path, monkeypatch):
    """A large run is written in batches, a row group each: a procedure is read from the group that holds it, and
    opens as the same procedure, in full; an id that names no row opens nothing."""
    batched = tmp_path / "batched"
    batched.mkdir()
    shutil.copy(local_run / "summary.json", batched)
    pq.write_table(pq.read_table(local_run / "rows.parquet"), batched / "rows.parquet", row_group_size=3)
    assert pq.ParquetFile(batched / "rows.parquet").num_row_groups > 3
    found = rows(local_run)
    groups_read: list[int] = []
    read_row_group = pq.ParquetFile.read_row_group

    def watched(self, group, *args, **kwargs):
        groups_read.append(group)
        return read_row_group(self, group, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", watched)
    opened = [decision(RunOrders(batched), knowledge, str(index)) for index in range(1, len(found) + 1)]
    assert groups_read == [(index - 1) // 3 for index in range(1, len(found) + 1)]
    assert opened == [decision(RunOrders(local_run), knowledge, str(index)) for index in range(1, len(found) + 1)]
    assert [(item["id"], item["orders"][0]["reference"], item["orders"][0]["findings"]) for item in opened] == \
        [(str(index), row["procedure"], [{"code": code, "severity": knowledge.config.findings[code].severity}
                                         for code in row["findings"]]) for index, row in enumerate(found, start=1)]
    for nothing in ("0", str(len(found) + 1), "01", "-1", "1.0", "x", "١"):
        assert decision(RunOrders(batched), knowledge, nothing) is None


@pytest.mark.parametrize("batch", [10_000, 7])
def test_a_runs_reports_read_each_procedure_as_its_own_row_reads_as_an_order(local_run, monkeypatch, batch):
    """The reports read a run's orders from the columns an order is made of, a batch of rows at a time: each is the
    order its whole row makes (what the run's writer scored), in the run's order, numbered across batches, within
    the period asked for."""
    monkeypatch.setattr(runs_module, "ORDER_BATCH", batch)
    every_row = list(BulkRow.from_table(pq.read_table(local_run / "rows.parquet").to_pydict()))
    assert [row.procedure for row in every_row] == [row["procedure"] for row in rows(local_run)]
    days = sorted({row.date for row in every_row})
    middle = ReportPeriod(date.fromisoformat(days[len(days) // 3]), date.fromisoformat(days[2 * len(days) // 3]))
    for period in (ReportPeriod(), middle):
        expected = [row.order(index) for index, row in enumerate(every_row, start=1)
                    if (period.since is None or period.since <= date.fromisoformat(row.date) <= period.until)]
        assert list(RunOrders(local_run).orders(period)) == expected
        assert len(expected) > 1 and any(order.outcomes for order in expected)
    assert 0 < len(list(RunOrders(local_run).orders(middle))) < len(every_row)


def test_the_dashboard_opens_a_bulk_run(chromium, runs, local_run, tmp_path):
    done = summary(local_run)
    database = f"sqlite:///{tmp_path / 'dashboard.db'}"
    with serving(tmp_path, CDS_SPINE_DATABASE_URL=database, CDS_SPINE_AUDIT_USERS=AUDIT_USERS_ENV,
                 CDS_SPINE_BULK_RUNS_DIR=str(runs)) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base}/dashboard")
        page.fill("#key", KEY)
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-loaded=true]", timeout=PATIENCE * 1000)
        assert page.text_content("#tile-orders") == "0"
        apply(page, run="past-2023")
        assert page.text_content("#tile-orders") == str(done["orders"])
        assert chart_data(page, "adherence-chart")["labels"] == [group["group"] for group in done["by"]["month"]]
        assert chart_data(page, "decision-chart")["data"] == [[done["met"], done["notMet"], done["exempt"],
                                                                done["stopped"]]]
        expect(page.locator("#run-note")).to_be_visible()
        expect(page.locator("#decisions")).to_be_visible()  # the run's procedures, each opened in full
        assert page.text_content("#decisions-title") == "Procedures audited"
        assert f"({done['procedures']} procedures)" in page.text_content("#page-label")
        page.locator("#decisions tbody tr button").first.click()
        expect(page.locator("#detail")).to_be_visible()
        assert "evaluated as of" in page.text_content("#detail-id")
        assert "On record" in page.text_content("#detail-body") and "No card" in page.text_content("#detail-body")
        for live in ("#tile-cards", "#tile-override", "#reasons"):  # a run has no cards: no live-only panel shows
            expect(page.locator(live)).to_be_hidden()
        assert "run=past-2023" in page.get_attribute("#csv", "href")
        page.screenshot(path=str(tmp_path / "bulk-run.png"), full_page=True)
        page.click("#detail-close")
        by_clinician: list[str] = []
        page.on("request", lambda request: "by=clinician" in request.url and by_clinician.append(request.url))
        apply(page, kind="esi")  # the run and its period unchanged: its clinicians and sites are not asked again
        assert len(by_clinician) == 1 and "kind=esi" in by_clinician[0]  # the panel's own report
        apply(page, run="")  # the live audit: asked at every load
        assert len(by_clinician) == 3
        browser.close()
    assert errors == []
