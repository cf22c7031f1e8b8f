"""Reading a FHIR Bulk Data export: its NDJSON files (plain or gzip; a folder, one file, or the `$export`
manifest), one resource per line, each keyed by the patient it belongs to.

Reading never stops at bad input: a line that is not a JSON object, a resourceType that FHIR does not
have, a patient-record resource without a subject, a gzip file cut short are each counted as a Problem
with its file and line, and the totals say how many lines were read and how many kept, so nothing is
lost without being counted.
"""
from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from fhir.resources.R4B import get_fhir_model_class

from ..fhir.generations import READ_AS
from ..fhir.references import referenced_id
from ..fhir.relevance import RECORD_TYPES as READ_TYPES
from ..fhir.relevance import relevance_filter
from ..pathway import Knowledge

RECORD_TYPES = READ_TYPES | {"Encounter"}
"""The patient-record types the pathway reads (in every FHIR generation), and the Encounters that date
diagnoses recorded without a date: each must name its patient."""
SHARED = ""
"""The key of resources every patient may point to (Medication)."""
PROBLEM_EXAMPLES = 20
"""Problems listed with file and line, per kind (all are counted)."""
UNPLACED_SYSTEMS = 100
"""Unplaced code systems counted by name; codes under any further ones are counted as `other`."""


class ExportError(Exception):
    """The export cannot be read at all (no such folder, no NDJSON files, a manifest that is not one)."""


@dataclass(frozen=True)
class Problem:
    kind: str  # malformed-line | unknown-type | no-subject | truncated-gzip | unreadable-file
    file: str
    line: int
    detail: str


@dataclass
class ReadTotals:
    """What reading the export found: lines read, resources by type, kept (for the pathway), problems, and
    codes under code systems the reader could not place (by system: map them, docs/deploy.md)."""

    lines: int = 0
    resources: Counter[str] = field(default_factory=Counter[str])
    kept: int = 0
    problem_counts: Counter[str] = field(default_factory=Counter[str])
    problems: list[Problem] = field(default_factory=list)
    unplaced_systems: Counter[str] = field(default_factory=Counter[str])

    def unplaced(self, system: str, count: int = 1) -> None:
        if system not in self.unplaced_systems and len(self.unplaced_systems) >= UNPLACED_SYSTEMS:
            system = "other"
        self.unplaced_systems[system] += count

    def problem(self, problem: Problem) -> None:
        self.problem_counts[problem.kind] += 1
        self._keep_example(problem)

    def _keep_example(self, problem: Problem) -> None:
        if sum(p.kind == problem.kind for p in self.problems) < PROBLEM_EXAMPLES:
            self.problems.append(problem)

    def merge(self, other: ReadTotals) -> None:
        self.lines += other.lines
        self.resources.update(other.resources)
        self.kept += other.kept
        self.problem_counts.update(other.problem_counts)
        for problem in other.problems:
            self._keep_example(problem)
        for system, count in other.unplaced_systems.items():
            self.unplaced(system, count)

    def as_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "resources": dict(sorted(self.resources.items())), "kept": self.kept,
                "problems": dict(sorted(self.problem_counts.items())),
                "unplacedCodeSystems": dict(self.unplaced_systems.most_common()),
                "problemExamples": [p.__dict__ for p in sorted(self.problems, key=lambda p: (p.kind, p.file, p.line))]}


def export_files(export: Path) -> list[Path]:
    """The NDJSON files of an export: a folder's `*.ndjson` and `*.ndjson.gz`, one such file, or the files a
    Bulk Data manifest (`output[].url`, local paths or file: URLs, relative to the manifest) lists."""
    if export.is_dir():
        found = sorted(p for p in export.iterdir() if p.name.endswith((".ndjson", ".ndjson.gz")))
        if not found:
            raise ExportError(f"{export}: no .ndjson or .ndjson.gz files in this folder")
        return found
    if not export.is_file():
        raise ExportError(f"{export}: no such file or folder")
    if export.name.endswith((".ndjson", ".ndjson.gz")):
        return [export]
    return _manifest_files(export)


def _manifest_files(manifest: Path) -> list[Path]:
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
        outputs = document["output"]
        urls = [item["url"] for item in outputs]
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{manifest}: not a Bulk Data manifest (a JSON object with output[].url): {exc}") from None
    files = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("", "file"):
            raise ExportError(f"{manifest}: {url} is not a local file: download the export's files first "
                              f"(the manifest may then name them by path)")
        path = Path(unquote(parts.path))
        files.append(path if path.is_absolute() else manifest.parent / path)
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise ExportError(f"{manifest}: the manifest lists files that are not there: {', '.join(missing[:5])}")
    return files


@cache
def is_fhir_type(name: str) -> bool:
    """An R4 resource type, or an older one the reader reads (MedicationOrder, ProcedureRequest)."""
    if name in READ_AS:
        return True
    try:
        get_fhir_model_class(name)
    except (ValueError, KeyError, ImportError):
        return False
    return True


def _lines(path: Path, totals: ReadTotals) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a plain or gzip NDJSON file; a gzip file cut short ends with a Problem."""
    opener = gzip.open if path.name.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as lines:
            for number, line in enumerate(lines, start=1):
                yield number, line
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        totals.problem(Problem("truncated-gzip", path.name, number + 1,
                               f"the compressed file ends early or is damaged after line {number}: {exc}"))
    except OSError as exc:
        totals.problem(Problem("unreadable-file", path.name, number + 1, str(exc)))


def patient_of(resource: dict[str, Any]) -> str | None:
    """The id of the patient a resource belongs to: a Patient's own id, else its subject or patient."""
    if resource.get("resourceType") == "Patient":
        return resource["id"] if isinstance(resource.get("id"), str) else None
    for element in ("subject", "patient"):
        value = resource.get(element)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return referenced_id(value["reference"])
    return None


KeptLine = tuple[str, bytes]
"""(patient id, or SHARED for a Medication; the resource's JSON line)."""


def read_file(path: Path, knowledge: Knowledge, totals: ReadTotals) -> Iterator[KeptLine]:
    """The lines of one file the pathway reads, keyed by patient; everything else counted in `totals`."""
    relevant = relevance_filter(knowledge, totals.unplaced)
    for number, line in _lines(path, totals):
        if not line.strip():
            continue
        totals.lines += 1
        try:
            resource = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            totals.problem(Problem("malformed-line", path.name, number, f"not JSON: {exc}"))
            continue
        resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(resource, dict):
            totals.problem(Problem("malformed-line", path.name, number, "not a JSON object"))
            continue
        if not isinstance(resource_type, str) or not is_fhir_type(resource_type):
            totals.problem(Problem("unknown-type", path.name, number,
                                   f"resourceType {resource_type!r} is not a FHIR R4 resource type"))
            continue
        totals.resources[resource_type] += 1
        if resource_type == "Medication":
            totals.kept += 1
            yield SHARED, line.rstrip(b"\r\n")
            continue
        if resource_type not in RECORD_TYPES and resource_type != "Patient":
            continue
        patient = patient_of(resource)
        if patient is None:
            totals.problem(Problem("no-subject", path.name, number,
                                   f"a {resource_type} without a subject (or patient) reference"))
            continue
        if resource_type == "Patient" or relevant(resource):
            totals.kept += 1
            yield patient, line.rstrip(b"\r\n")
