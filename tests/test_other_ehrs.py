"""The decision a spine clinician reads from records other EHRs and FHIR generations wrote (issue 19):
MIMIC-IV on FHIR (local code systems, dotless ICD-9 and ICD-10, diagnoses dated only by their encounter),
SMART's STU3 sample patients (STU3 statuses) and the AHRQ chronic-pain project's test bundles (a code under
the wrong system, undated encounter diagnoses). One test per class of failure seen on them; where the
records lack a shape (a cord injury, a DSTU2 order, a site's own code system), a real resource is copied
with another code or in another generation's shape, so the rest stays the EHR's."""
from __future__ import annotations

import copy
import gzip
import json
import re
import shutil

import pyarrow.parquet as pq
import pytest
from cli import run_cli
from metrics_text import value
from real_records import (
    cds4cpm_patient,
    evaluate,
    folder,
    mimic_patient,
    order,
    patient,
    request,
    smart_patient,
)
from support import ORDER_SIGN, call
from typer.testing import CliRunner

from cds_spine.cli import app

ESI_LUMBAR, ESI_CERVICAL, FUSION = order("64483"), order("62321"), order("22612")
MIMIC_ICD9 = "http://fhir.mimic.mit.edu/CodeSystem/diagnosis-icd9"
MIMIC_ICD10 = "http://fhir.mimic.mit.edu/CodeSystem/diagnosis-icd10"


def only(cards: list[dict]) -> dict:
    [card] = cards
    return card


def recoded(resource: dict, system: str, code: str, display: str, rid: str) -> dict:
    """A copy of a real resource with another code."""
    made = copy.deepcopy(resource)
    made["id"] = rid
    made["code"] = {"coding": [{"system": system, "code": code, "display": display}]}
    return made


# --- 1. codes under local systems, ICD-9-CM, dotless ICD --------------------------------------------------

@pytest.mark.parametrize("prefix,as_of,flag", [
    ("a977f4b6", "2141-08-20", "Closed fracture of lumbar vertebra"),  # ICD-9 805.4, MIMIC's system, dotless
    ("3bbb6aec", "2137-11-01", "Secondary malignant neoplasm of bone"),  # ICD-9 198.5 only
    ("71a27b6b", "2154-03-01", "Collapsed vertebra"),  # ICD-10 M48.54XA, dotless, MIMIC's system
])
def test_a_red_flag_under_a_local_icd_system_stops_the_injection_and_leads(tmp_path, prefix, as_of, flag):
    pid, resources = mimic_patient(prefix)
    card = only(evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), as_of))
    assert card["indicator"] == "critical" and card["summary"].startswith("Red flag") and flag in card["summary"]
    assert card["summary"].endswith(("no lumbar ESI before urgent evaluation", "no lumbar ESI yet"))  # long: short
    assert "try physical therapy first" not in card["detail"]


def test_an_icd9_stenosis_qualifies_for_an_esi(tmp_path):
    pid, resources = mimic_patient("7d61fb4e")  # 724.02 lumbar spinal stenosis, dotless, MIMIC's ICD-9 system
    card = only(evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2117-05-01"))
    # a personal history of cancer, no spine imaging: image first, then therapy
    assert card["summary"].startswith("Personal history of other malignant neo") and "MRI or CT" in card["summary"]
    assert "- No conservative therapy documented" in card["detail"]
    assert "Diagnosis: Spinal stenosis, lumbar region" in card["detail"]
    assert "No radicular or stenosis diagnosis" not in card["detail"]


@pytest.mark.parametrize("code,display", [
    ("9522", "Lumbar spinal cord injury without spinal bone injury"),  # ICD-9 952.2
    ("S24104A", "Unspecified injury at T11-T12 level of thoracic spinal cord, initial encounter"),
])
def test_a_spinal_cord_injury_is_a_red_flag(tmp_path, code, display):
    pid, resources = mimic_patient("42f0ed8f")  # backache 724.5 at an admission in 2160
    backache = resources["Condition"][0]
    system = MIMIC_ICD9 if code[0].isdigit() else MIMIC_ICD10
    resources["Condition"].append(recoded(backache, system, code, display, "cord-injury"))
    card = only(evaluate(tmp_path, request(pid, resources, FUSION), "2160-12-01"))
    assert card["indicator"] == "info" and card["summary"].startswith("Red flag") and display in card["summary"]
    assert card["summary"].endswith("evaluate urgently")


def test_an_icd9_backache_opens_the_patient_view_summary(tmp_path):
    pid, resources = mimic_patient("42f0ed8f")
    card = only(evaluate(tmp_path, request(pid, resources, hook="patient-view"), "2160-12-01"))
    assert card["summary"].startswith("Spine pathway: 0 days of conservative therapy")
    assert "Diagnosis: Backache, unspecified" in card["detail"]


def test_a_snomed_code_filed_under_the_icd10_system_is_read_as_snomed(tmp_path):
    pid, resources = cds4cpm_patient("mr_delta")  # 278860009 "Chronic Lower Back Pain" under icd-10-cm
    card = only(evaluate(tmp_path, request(pid, resources, hook="patient-view"), "2026-12-01"))
    assert "Diagnosis: Chronic Lower Back Pain (date unknown)" in card["detail"]


def test_a_site_maps_its_own_code_system_without_touching_python(tmp_path, monkeypatch):
    pid, resources = mimic_patient("42f0ed8f")
    local = "http://hospital.example.org/fhir/CodeSystem/dx"
    resources["Condition"] = [recoded(resources["Condition"][0], local, "M54.16", "Lumbar radiculopathy", "rad")]
    body = request(pid, resources, ESI_LUMBAR)
    assert "Lumbar radiculopathy" not in only(evaluate(tmp_path, body, "2160-12-01"))["detail"]
    site = tmp_path / "local-code-systems.yaml"
    site.write_text(f"local:\n  {local}: http://hl7.org/fhir/sid/icd-10-cm\n")
    monkeypatch.setenv("CDS_SPINE_LOCAL_CODE_SYSTEMS", str(site))
    card = only(evaluate(tmp_path, body, "2160-12-01"))
    assert "Diagnosis: Lumbar radiculopathy" in card["detail"] and "No radicular" not in card["detail"]


def test_a_site_file_that_maps_to_no_standard_system_stops_the_service_naming_it(tmp_path, monkeypatch):
    site = tmp_path / "local.yaml"
    site.write_text("local:\n  urn:oid:1.2.3: http://example.org/not-a-standard-system\n")
    monkeypatch.setenv("CDS_SPINE_LOCAL_CODE_SYSTEMS", str(site))
    pid, resources = mimic_patient("42f0ed8f")
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request(pid, resources, ESI_LUMBAR)))
    result = CliRunner().invoke(app, ["evaluate", str(path), "--as-of", "2160-12-01"])
    assert result.exit_code == 2
    assert str(site) in result.output and "http://example.org/not-a-standard-system" in result.output


def unplaced(client, system: str) -> float:
    return value(client.get("/metrics").text, "cds_spine_unplaced_code_systems_total", system=system)


def test_unplaced_code_systems_are_counted_and_logged_once(client, caplog):
    pid, resources = mimic_patient("42f0ed8f")
    local = "http://hospital.example.org/fhir/CodeSystem/unmapped-dx"
    resources["Condition"] = [recoded(c, local, c["code"]["coding"][0]["code"], "x", f"u{i}")
                              for i, c in enumerate(resources["Condition"])]
    before = unplaced(client, local)
    for _ in range(2):
        assert call(client, ORDER_SIGN, request(pid, resources, ESI_LUMBAR)).status_code == 200
    assert unplaced(client, local) - before == 2 * len(resources["Condition"])
    named = [r for r in caplog.records if local in r.getMessage()]
    assert len(named) == 1 and "CDS_SPINE_LOCAL_CODE_SYSTEMS" in named[0].getMessage()
    pid, resources = mimic_patient("a977f4b6")  # MIMIC's own ICD-9 system: mapped by default, placed
    assert call(client, ORDER_SIGN, request(pid, resources, ESI_LUMBAR)).status_code == 200
    assert unplaced(client, MIMIC_ICD9) == 0


def test_unplaced_code_systems_are_counted_once_when_the_fhir_server_completes_prefetch(client, httpx_mock):
    """A call whose prefetch lacks a key reads what prefetch holds once, not again when the server has answered."""
    pid, resources = mimic_patient("42f0ed8f")
    local = "http://hospital.example.org/fhir/CodeSystem/unmapped-dx-2"
    resources["Condition"] = [recoded(c, local, c["code"]["coding"][0]["code"], "x", f"u{i}")
                              for i, c in enumerate(resources["Condition"])]
    body = request(pid, resources, ESI_LUMBAR)
    del body["prefetch"]["procedures"]
    server = "https://ehr.example.org/fhir"
    body.update(fhirServer=server, fhirAuthorization={"access_token": "T", "token_type": "Bearer", "expires_in": 300,
                                                      "scope": "user/*.read", "subject": "svc"})
    httpx_mock.add_response(url=re.compile(f"{re.escape(server)}/.*"), is_reusable=True,
                            json={"resourceType": "Bundle", "type": "searchset", "entry": []})
    before = unplaced(client, local)
    assert call(client, ORDER_SIGN, body).status_code == 200
    assert f"{server}/Procedure?patient={pid}" in [str(sent.url) for sent in httpx_mock.get_requests()]
    assert unplaced(client, local) - before == len(resources["Condition"])


# --- 2. FHIR generations ---------------------------------------------------------------------------------

def test_stu3_conditions_are_read_not_left_out(tmp_path):
    pid, resources = smart_patient("1272431")  # "Low back pain", clinicalStatus "active" as a bare code
    card = only(evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2016-06-01"))
    assert "could not be read" not in card["detail"]
    assert "Diagnosis: Low back pain" in card["detail"]
    view = only(evaluate(tmp_path, request(pid, resources, hook="patient-view"), "2016-06-01"))
    assert view["summary"].startswith("Spine pathway:")


def test_a_resolved_stu3_condition_is_not_on_record(tmp_path):
    pid, resources = smart_patient("1272431")
    for condition in resources["Condition"]:
        condition["clinicalStatus"] = "resolved"
    assert evaluate(tmp_path, request(pid, resources, hook="patient-view"), "2016-06-01") == []


def _as_dstu2_order(stu3: dict, ibuprofen: dict) -> dict:
    """A SMART STU3 MedicationRequest in its DSTU2 shape (MedicationOrder), with another drug."""
    order_ = {k: v for k, v in stu3.items() if k not in ("subject", "intent", "authoredOn", "dosageInstruction")}
    order_.update(resourceType="MedicationOrder", patient=stu3["subject"], status="active",
                  dateWritten="2009-09-01", medicationCodeableConcept=ibuprofen,
                  dosageInstruction=[{"timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
                                      "doseQuantity": {"value": 1, "unit": "TAB"}}],
                  dispenseRequest={"quantity": {"value": 90, "unit": "TAB"}, "numberOfRepeatsAllowed": 1})
    return order_


def test_a_dstu2_medication_order_is_a_course_of_therapy(tmp_path):
    pid, resources = smart_patient("665677")  # backache since 2009-07-01; STU3 orders dated by their dosage only
    ibuprofen = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197806",
                             "display": "Ibuprofen 600 MG Oral Tablet"}], "text": "Ibuprofen 600 MG Oral Tablet"}
    resources["MedicationOrder"] = [_as_dstu2_order(resources["MedicationRequest"][0], ibuprofen)]
    card = only(evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2009-12-01"))
    # 90 tablets, one three times a day, two fills: 60 days from 2009-09-01.
    assert "Ibuprofen 600 MG Oral Tablet (1 order), 2009-09-01 to 2009-10-30" in card["detail"]
    assert "Longest continuous episode: 60 days" in card["detail"]
    assert "could not be read" not in card["detail"]


# --- 3. diagnoses dated only by their encounter ------------------------------------------------------------

@pytest.mark.parametrize("as_of,waived", [("2141-07-29", False), ("2141-08-20", True)])
def test_an_encounter_diagnosis_dates_from_its_encounter(tmp_path, as_of, waived):
    pid, resources = mimic_patient("a977f4b6")  # the fracture is coded at the admission of 2141-07-30
    card = only(evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), as_of))
    assert card["summary"].startswith("Red flag on record") is waived
    assert "(date unknown)" not in card["detail"]


def test_an_encounter_that_cannot_be_had_leaves_the_date_unknown(tmp_path):
    pid, resources = mimic_patient("a977f4b6")
    resources.pop("Encounter")  # the EHR's prefetch did not _include them, and there is no fhirServer
    card = only(evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2141-08-20"))
    assert card["summary"].startswith("Red flag on record")
    assert "Red flag: Closed fracture of lumbar vertebra without mention of spinal cord injury (date unknown)" in \
        card["detail"]


def test_a_missing_encounter_is_fetched_from_the_fhir_server(tmp_path, httpx_mock):
    pid, resources = mimic_patient("a977f4b6")
    encounters = resources.pop("Encounter")
    [admission] = {c["encounter"]["reference"].split("/")[-1] for c in resources["Condition"]}
    httpx_mock.add_response(url=f"https://ehr.example.org/fhir/Encounter?_id={admission}", json={
        "resourceType": "Bundle", "type": "searchset",
        "entry": [{"resource": e} for e in encounters if e["id"] == admission]})
    body = request(pid, resources, ESI_LUMBAR)
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/Encounter.read", "subject": "cds-spine"}
    card = only(evaluate(tmp_path, body, "2141-07-29"))  # the day before the admission: not yet on record
    assert not card["summary"].startswith("Red flag")


def test_a_failing_encounter_fetch_is_no_reason_to_refuse(tmp_path, httpx_mock):
    pid, resources = mimic_patient("a977f4b6")
    resources.pop("Encounter")
    httpx_mock.add_response(status_code=500)
    body = request(pid, resources, ESI_LUMBAR)
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {"access_token": "t", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/Encounter.read", "subject": "cds-spine"}
    card = only(evaluate(tmp_path, body, "2141-08-20"))
    assert card["summary"].startswith("Red flag on record") and "(date unknown)" in card["detail"]


def test_an_undated_encounter_diagnosis_without_status_is_on_record(tmp_path):
    pid, resources = cds4cpm_patient("mr_ford")  # M54.5, encounter-diagnosis, no status, no date, no encounter
    card = only(evaluate(tmp_path, request(pid, resources, hook="patient-view"), "2026-12-01"))
    assert "Diagnosis: Low back pain (date unknown)" in card["detail"]


# --- 4. one rule for systemic drugs taken for another condition -----------------------------------------

def test_a_systemic_drug_taken_for_another_spinal_region_counts_as_for_another_condition(tmp_path):
    # Acetaminophen renewed at every yearly visit; the EHR gives each order its reason: chronic neck pain.
    pid, resources = patient("85629dc4")
    [neck] = [c for c in resources["Condition"] if c["code"].get("text") == "Chronic neck pain (finding)"]
    for order_ in resources["MedicationRequest"]:
        if "Tylenol" in order_.get("medicationCodeableConcept", {}).get("text", ""):
            order_["reasonReference"] = [{"reference": f"urn:uuid:{neck['id']}"}]
    card = only(evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-01"))
    assert card["indicator"] == "info"  # no warning: the drug class has been tried
    assert "Acetaminophen 325 MG Oral Tablet \\[Tylenol\\], taken for Chronic neck pain (finding)" in card["detail"]
    assert "Longest continuous episode: 366 days" in card["detail"]


# --- the audit of the past reads them the same way ------------------------------------------------------

def _esi(patient_id: str, day: str) -> dict:
    return {"resourceType": "Procedure", "id": f"esi-{patient_id[:8]}-{day}", "status": "completed",
            "subject": {"reference": f"Patient/{patient_id}"}, "performedDateTime": f"{day}T10:00:00Z",
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64483"}]}}


@pytest.mark.slow
def test_the_bulk_audit_reads_mimic_as_the_live_service_does(tmp_path):
    export = tmp_path / "export"
    shutil.copytree(folder("mimic-iv-demo"), export)
    fracture, _ = mimic_patient("a977f4b6")  # 805.4 at the admission of 2141-07-30
    stenosis, _ = mimic_patient("7d61fb4e")  # 724.02 at the admission of 2117-04-11
    injections = [_esi(fracture, "2141-07-25"), _esi(fracture, "2141-08-20"), _esi(stenosis, "2117-05-01")]
    unmapped = "http://hospital.example.org/fhir/CodeSystem/unmapped-dx"
    _, resources = mimic_patient("42f0ed8f")
    local = [recoded(c, unmapped, c["code"]["coding"][0]["code"], "x", f"local-{i}")
             for i, c in enumerate(resources["Condition"])]
    with gzip.open(export / "Procedure.ndjson.gz", "wt") as file:
        file.writelines(json.dumps(r) + "\n" for r in injections)
    with gzip.open(export / "Condition.001.ndjson.gz", "wt") as file:
        file.writelines(json.dumps(r) + "\n" for r in local)
    out = tmp_path / "run"
    result = run_cli("audit-bulk", str(export), "--out", str(out), "--since", "2100-01-01", "--until", "2200-12-31",
                     "--quiet", CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS="true")
    assert result.returncode == 0, result.stderr
    done = json.loads((out / "summary.json").read_text())
    assert done["read"]["problems"] == {} and done["read"]["resources"]["Encounter"] > 200
    assert done["read"]["unplacedCodeSystems"] == {unmapped: len(local)}
    decisions = {(row["patient"], row["date"]): row["decision"]
                 for row in pq.read_table(out / "rows.parquet").to_pylist()}
    assert decisions == {(fracture, "2141-07-25"): "not-met", (fracture, "2141-08-20"): "stopped",
                         (stenosis, "2117-05-01"): "not-met"}


def test_a_stu3_hba1c_over_the_threshold_is_read_before_fusion(tmp_path):
    """SMART's STU3 sample patient 8888801: HbA1c 11.1 % on 2014-11-02 (status `unknown`, as the sample has it)."""
    pid, resources = smart_patient("8888801")
    [card] = evaluate(tmp_path, request(pid, resources, order("22612")), "2014-12-01")
    assert "HbA1c 11.1 % on 2014-11-02: payers ask for HbA1c under 8 % before elective fusion" in card["detail"]
