"""CDS Hooks requests built from the real-shaped Bulk Data export in ../shared/real-data/ (Synthea patients
exported by others, read as they are), evaluated through `cds-spine evaluate --as-of`.

A patient's resources are selected by subject (or patient) reference, each type put in a searchset Bundle
under the service's prefetch key (Medications the requests name by reference ride along, as `_include`
would bring them), and a draft order added.
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

EXPORT = Path(__file__).resolve().parent.parent.parent / "shared" / "real-data" / "synthea-qicore"
PREFETCH_KEYS = {"Condition": "conditions", "Procedure": "procedures", "MedicationRequest": "medicationRequests",
                 "MedicationStatement": "medicationStatements", "ServiceRequest": "serviceRequests"}
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"


def _id_of(reference: str) -> str:
    return reference.removeprefix("urn:uuid:").rsplit("/", 1)[-1]


@cache
def export() -> tuple[dict[str, dict[str, list[dict]]], dict[str, dict]]:
    """The real-shaped export, read as read_export reads one."""
    if not EXPORT.is_dir():
        pytest.fail(f"the real-shaped export is not at {EXPORT}: the tests read ../shared/real-data/ beside the "
                    f"checkout (as CI has it); it is never copied into the project", pytrace=False)
    return read_export(EXPORT)


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
    bundles: dict[str, list[dict]] = {key: list(resources.get(kind, [])) for kind, key in PREFETCH_KEYS.items()}
    bundles["medicationRequests"] += [medications[m] for m in sorted(named) if m in medications]
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
