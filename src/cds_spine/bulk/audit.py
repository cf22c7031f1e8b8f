"""The one per-patient function both engines call: a patient's resources in, one row per completed ESI, regenerative
injection or spine-surgery Procedure of the period out, each evaluated as the live service would have evaluated its
order on the day before it was performed: the same reader (fhir.record), the same pathway, the same cards/.
"""
from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson

from ..audit.bulk_rows import BulkRow
from ..audit.measure import MeasureDefinition, load_measure
from ..fhir.record import build_record
from ..fhir.references import unresolved_medications
from ..pathway import Assessment, DraftOrder, Knowledge, PatientRecord, assess, classify_all, load_knowledge
from ..pathway.record import ProcedureEntry
from ..privacy import PatientIdHasher

PERFORMED = "completed"


@dataclass(frozen=True)
class AuditContext:
    """What every patient is audited with: the knowledge and measure (from cards/), the period of the
    procedures (inclusive days; None: open) and how patient ids are shown in the rows."""

    knowledge: Knowledge
    measure: MeasureDefinition
    since: date | None
    until: date | None
    patient_key: Callable[[str], str]

    def in_period(self, day: date) -> bool:
        return (self.since is None or day >= self.since) and (self.until is None or day <= self.until)


@dataclass(frozen=True)
class AuditSpec:
    """An AuditContext as plain data, to ship to other processes and machines (Spark executors): cards/
    as bytes, so every executor audits with the driver's clinical knowledge, whatever it has installed."""

    cards: tuple[tuple[str, bytes], ...]
    local_code_systems: bytes | None
    """The site's file of local code systems (CDS_SPINE_LOCAL_CODE_SYSTEMS), if any."""
    since: date | None
    until: date | None
    hash_key: bytes | None
    """None: plain patient ids in the rows."""

    @classmethod
    def of(cls, cards_dir: Path, local_code_systems: Path | None, since: date | None, until: date | None,
           hash_key: bytes | None) -> AuditSpec:
        files = sorted(p for p in cards_dir.rglob("*") if p.is_file())
        return cls(tuple((str(p.relative_to(cards_dir)), p.read_bytes()) for p in files),
                   local_code_systems.read_bytes() if local_code_systems else None, since, until, hash_key)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(repr((self.since, self.until, self.hash_key, self.local_code_systems)).encode())
        for name, content in self.cards:
            digest.update(name.encode() + b"\0" + content)
        return digest.hexdigest()

    def context(self) -> AuditContext:
        with tempfile.TemporaryDirectory(prefix="cds-spine-cards-") as folder:
            cards_dir = Path(folder) / "cards"
            for name, content in self.cards:
                (cards_dir / name).parent.mkdir(parents=True, exist_ok=True)
                (cards_dir / name).write_bytes(content)
            site_file = None
            if self.local_code_systems is not None:
                site_file = Path(folder) / "local-code-systems.yaml"
                site_file.write_bytes(self.local_code_systems)
            knowledge = load_knowledge(cards_dir, site_file)
            measure = load_measure(cards_dir, knowledge)
        return AuditContext(knowledge, measure, self.since, self.until, self.patient_key())

    def patient_key(self) -> Callable[[str], str]:
        """How rows show patient ids: the keyed hash, or plain ids when there is no key."""
        return PatientIdHasher(self.hash_key) if self.hash_key is not None else str


def _performed_day(entry: ProcedureEntry) -> date | None:
    performed = entry.performed
    return (performed.start or performed.end) if performed else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _performer(procedure: dict[str, Any]) -> tuple[str | None, str | None]:
    """The first performer's reference and name, as the record gives them."""
    performers = procedure.get("performer")
    actor = performers[0].get("actor") if isinstance(performers, list) and performers and isinstance(
        performers[0], dict) else None
    if not isinstance(actor, dict):
        return None, None
    return _text(actor.get("reference")), _text(actor.get("display"))


def _site(procedure: dict[str, Any]) -> str | None:
    location = procedure.get("location")
    return _text(location.get("display")) if isinstance(location, dict) else None


def _row(context: AuditContext, patient_id: str, entry: ProcedureEntry, day: date, assessment: Assessment,
         raw: dict[str, Any]) -> BulkRow:
    order = assessment.order
    codes = tuple(finding.code for finding in assessment.findings)
    clinician, clinician_name = _performer(raw)
    history = assessment.history
    return BulkRow(
        patient=context.patient_key(patient_id), procedure=entry.reference, date=day.isoformat(),
        as_of=(day - timedelta(days=1)).isoformat(), kind=order.category, region=order.region,
        detail=order.guidance if order.category == "esi" else order.kind, code=f"{order.code.system}|{order.code.code}",
        decision=assessment.decision.value, findings=codes,
        components=context.measure.outcomes(order.category, assessment.decision.value, list(codes)),
        conservative_days=history.days, required_days=assessment.required_days,
        conservative_evidence=len(history.evidence), not_counted=len(history.not_counted),
        prior_injections=len(assessment.prior_injections), diagnoses=len(assessment.diagnoses),
        red_flags=len(assessment.red_flags), unreadable=len(assessment.unreadable),
        clinician=clinician, clinician_name=clinician_name, site=_site(raw),
        knowledge_version=context.knowledge.version)


def audit_patient(patient_id: str, lines: Iterable[bytes], medications: Mapping[str, bytes],
                  context: AuditContext) -> list[BulkRow]:
    """Rows for the patient's completed ESIs, regenerative injections and spine surgeries in the period, oldest first. `lines` are
    the patient's kept resources (export.read_file); `medications` every Medication line by id."""
    knowledge = context.knowledge
    resources = [orjson.loads(line) for line in lines]
    record_resources = [r for r in resources if r.get("resourceType") != "Patient"]
    record_resources += [orjson.loads(medications[m]) for m in unresolved_medications(record_resources)
                         if m in medications]
    if not any(r.get("resourceType") == "Procedure" for r in record_resources):
        return []
    record: PatientRecord = build_record(record_resources, knowledge)
    raw_procedures = {f"Procedure/{r.get('id')}": r for r in record_resources if r.get("resourceType") == "Procedure"}
    rows = []
    for entry in record.procedures:
        day = _performed_day(entry)
        if entry.status != PERFORMED or day is None or not context.in_period(day):
            continue
        draft = DraftOrder(entry.reference, entry.codes, entry.text, entry.status, entry.body_sites,
                           tuple(code for reason in entry.reasons for code in reason.codes),
                           tuple(f"Condition/{reason.condition_id}" for reason in entry.reasons if reason.condition_id))
        orders = classify_all([draft], knowledge, record)
        if not orders:
            continue
        now = datetime.combine(day - timedelta(days=1), time(), UTC)
        [assessment] = assess(orders, record, knowledge, now, session_orders=[draft])
        rows.append(_row(context, patient_id, entry, day, assessment, raw_procedures.get(entry.reference, {})))
    return sorted(rows, key=row_order)


PatientAudit = Callable[[str, Iterable[bytes], Mapping[str, bytes], AuditContext], list[BulkRow]]


def row_order(row: BulkRow) -> tuple[str, str, str]:
    return row.sort_key

