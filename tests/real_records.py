"""CDS Hooks requests built from the records others wrote in ../shared/real-data/, read as they are: the
Synthea Bulk Data export, MIMIC-IV on FHIR (NDJSON), SMART's STU3 sample patients and the AHRQ chronic-pain
project's R4 test bundles; evaluated through `cds-spine evaluate --as-of`.

A patient's resources are selected by subject (or patient) reference, each type put in a searchset Bundle
under the service's prefetch key (Medications the requests name by reference, and Encounters the Conditions
name, ride along, as `_include` would bring them), and a draft order added.
"""
from __future__ import annotations

import copy
import gzip
import json
import uuid
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cds_spine.cli import app

REAL_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "real-data"
EXPORT = REAL_DATA / "synthea-qicore"
PREFETCH_KEYS = {"Condition": "conditions", "Procedure": "procedures", "MedicationRequest": "medicationRequests",
                 "MedicationStatement": "medicationStatements", "ServiceRequest": "serviceRequests",
                 "MedicationOrder": "medicationRequests", "ProcedureRequest": "serviceRequests",
                 "Observation": "observations", "DiagnosticReport": "imagingReports",
                 "ImagingStudy": "imagingStudies"}
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"


def _id_of(reference: str) -> str:
    return reference.removeprefix("urn:uuid:").rsplit("/", 1)[-1]


def folder(name: str) -> Path:
    path = REAL_DATA / name
    if not path.is_dir():
        pytest.fail(f"the real-shaped records are not at {path}: the tests read ../shared/real-data/ beside the "
                    f"checkout (as CI has it); they are never copied into the project", pytrace=False)
    return path


@cache
def export() -> tuple[dict[str, dict[str, list[dict]]], dict[str, dict]]:
    """The real-shaped export, read as read_export reads one."""
    return read_export(folder("synthea-qicore"))


@cache
def mimic() -> dict[str, dict[str, list[dict]]]:
    """MIMIC-IV on FHIR (demo): patient id -> resource type -> resources."""
    return read_export(folder("mimic-iv-demo"))[0]


def mimic_patient(prefix: str) -> tuple[str, dict[str, list[dict]]]:
    """The MIMIC patient whose id starts with `prefix`: its id and a copy of its resources by type."""
    [found] = [pid for pid in mimic() if pid.startswith(prefix)]
    return found, copy.deepcopy({kind: list(resources) for kind, resources in mimic()[found].items()})


def _by_type(resources: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = defaultdict(list)
    for resource in resources:
        found[resource["resourceType"]].append(resource)
    return dict(found)


def smart_patient(number: str) -> tuple[str, dict[str, list[dict]]]:
    """SMART's STU3 sample patient `smart-<number>`: every file `patient-<number>.fhir-bundle*`."""
    paths = sorted(folder("smart-stu3").glob(f"patient-{number}.fhir-bundle*.json.gz"))
    assert paths, number
    resources = [entry["resource"] for path in paths for entry in json.loads(gzip.decompress(path.read_bytes()))[
        "entry"]]
    return f"smart-{number}", _by_type(resources)


def cds4cpm_patient(name: str) -> tuple[str, dict[str, list[dict]]]:
    """A test patient of the CDS for Chronic Pain Management IG: its bundle (top level or bundles/)."""
    base = folder("cds4cpm-ufl")
    [path] = [p for p in (base / f"{name}.json", base / "bundles" / f"{name}.json") if p.is_file()]
    resources = [entry["resource"] for entry in json.loads(path.read_text())["entry"]]
    [patient_] = [r for r in resources if r["resourceType"] == "Patient"]
    return patient_["id"], _by_type(resources)


def read_export(folder: Path) -> tuple[dict[str, dict[str, list[dict]]], dict[str, dict]]:
    """(patient id -> resource type -> resources, Medication id -> Medication) of a Bulk Data export folder."""
    patients: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    medications = {}
    for path in sorted(folder.glob("*.ndjson.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                resource = json.loads(line)
                if resource["resourceType"] == "Medication":
                    medications[resource["id"]] = resource
                subject = resource.get("subject") or resource.get("patient")
                if subject:
                    patients[_id_of(subject["reference"])][resource["resourceType"]].append(resource)
    return patients, medications


def patient(prefix: str) -> tuple[str, dict[str, list[dict]]]:
    """The patient whose id starts with `prefix`: its id and a copy of its resources by type."""
    patients, _ = export()
    [found] = [pid for pid in patients if pid.startswith(prefix)]
    return found, copy.deepcopy({kind: list(resources) for kind, resources in patients[found].items()})


def like(resource: dict, code: str, display: str, system: str = SNOMED, **changes: Any) -> dict:
    """A copy of a real resource with another code (and other changes): real shape, another fact."""
    made = copy.deepcopy(resource)
    made["id"] = str(uuid.uuid4())
    made["code"] = {"coding": [{"system": system, "code": code, "display": display}], "text": display}
    made.update(changes)
    return made


def order(code: str, system: str = CPT) -> dict:
    return {"resourceType": "ServiceRequest", "id": "order-1", "status": "draft", "intent": "order",
            "code": {"coding": [{"system": system, "code": code}]}, "subject": {"reference": "Patient/p"}}


def request(patient_id: str, resources: dict[str, list[dict]], draft: dict | None = None,
            hook: str = "order-sign", medications: dict[str, dict] | None = None) -> dict:
    """`medications`: the Medications by id (default: the real export's)."""
    medications = export()[1] if medications is None else medications
    named = {_id_of(r["medicationReference"]["reference"]) for kind in ("MedicationRequest", "MedicationStatement")
             for r in resources.get(kind, []) if "medicationReference" in r}
    bundles: dict[str, list[dict]] = defaultdict(list)
    for kind, key in PREFETCH_KEYS.items():
        bundles[key] += resources.get(kind, [])
    bundles["medicationRequests"] += [medications[m] for m in sorted(named) if m in medications]
    encounters = {_id_of(c["encounter"]["reference"]) for c in resources.get("Condition", []) if "encounter" in c}
    bundles["conditions"] += [e for e in resources.get("Encounter", []) if e["id"] in encounters]
    context: dict[str, Any] = {"userId": "Practitioner/1", "patientId": patient_id}
    if hook != "patient-view":
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": draft or order("64483")}]}
    prefetch = {key: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in found]}
                for key, found in bundles.items()}
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch}


def evaluate(tmp_path: Path, body: dict, as_of: str) -> list[dict]:
    """The cards `cds-spine evaluate --as-of` prints for the request."""
    path = tmp_path / f"{uuid.uuid4()}.json"
    path.write_text(json.dumps(body))
    result = CliRunner().invoke(app, ["evaluate", str(path), "--as-of", as_of])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["cards"]
