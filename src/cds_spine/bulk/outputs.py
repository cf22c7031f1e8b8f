"""What a bulk run writes to its folder, whichever engine ran it, from its rows in order:

- rows.parquet and rows.csv: one row per procedure (patient key, date, kind, region, decision, every
  finding, each measure component's outcome, evidence counts, performer and site, the knowledge version);
  rows.parquet is one file from the local engine, a folder of part files in row order from Spark's
  executors (both read as one table);
- summary.json: the totals of reading (resources, kept, problems with file and line), the measure's
  populations and rates (as `cds-spine report` and /audit/summary give them), the groupings the
  dashboard shows (month, clinician, order kind, region, site);
- measure-report.json: the FHIR R4 MeasureReport of the period, as the live audit writes it.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..audit.bulk_rows import BulkRow
from ..audit.formats import spreadsheet_cell
from ..audit.measure import MeasureDefinition
from ..audit.measure_report import scored
from ..audit.scoring import Scoring
from .export import ReadTotals

PROCEDURE_IDENTIFIER = "https://cds-spine.org/fhir/NamingSystem/bulk-audit-procedure"
COUNT_COLUMNS = frozenset({"conservativeDays", "requiredDays", "conservativeEvidence", "notCounted",
                           "priorInjections", "diagnoses", "redFlags", "unreadable"})
BATCH_ROWS = 10_000
GROUPINGS = ("month", "clinician", "order-kind", "region", "site")


@dataclass(frozen=True)
class RunInfo:
    engine: str
    export: str
    since: date | None
    until: date | None
    knowledge_version: str
    patient_keys: str  # how patient ids are shown: "keyed hash (CDS_SPINE_AUDIT_HASH_KEY)", ...


def row_schema(component_ids: list[str]) -> pa.Schema:
    """rows.parquet's columns, whoever writes it (the driver, or Spark's executors)."""
    return pa.schema([(name, pa.list_(pa.string()) if name == "findings" else
                       pa.int32() if name in COUNT_COLUMNS else pa.string())
                      for name in BulkRow.column_names(component_ids)])


class RunWriter:
    """Streams rows (in order) into the Parquet and CSV files and the measure's tallies; `parquet=False`
    when the rows are already in rows.parquet (Spark's executors wrote them)."""

    def __init__(self, out: Path, measure: MeasureDefinition, parquet: bool = True) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.measure = measure
        self.components = [component.id for component in measure.components]
        self.scoring = Scoring(measure)
        self.rows = 0
        self._batch: list[dict[str, Any]] = []
        self._schema = row_schema(self.components)
        self._parquet = pq.ParquetWriter(out / "rows.parquet", self._schema) if parquet else None
        self._csv_file = (out / "rows.csv").open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_file, lineterminator="\n")
        self._csv.writerow(self._schema.names)

    def add(self, row: BulkRow) -> None:
        self.rows += 1
        columns = row.columns(self.components)
        self.scoring.add(row.order(self.rows))
        self._csv.writerow(" ".join(value) if name == "findings" else ("" if value is None else spreadsheet_cell(value))
                           for name, value in ((name, columns[name]) for name in self._schema.names))
        if self._parquet is not None:
            self._batch.append(columns)
        if len(self._batch) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._batch and self._parquet is not None:
            self._parquet.write_table(pa.Table.from_pylist(self._batch, schema=self._schema))
            self._batch = []

    def finish(self, info: RunInfo, totals: ReadTotals, patients: int, seconds: float) -> dict[str, Any]:
        """Close the row files; write summary.json and measure-report.json; the summary."""
        self._flush()
        if self._parquet is not None:
            self._parquet.close()
        self._csv_file.close()
        scoring = self.scoring
        start = info.since or scoring.first or date.today()
        end = info.until or scoring.last or start
        now = datetime.now(UTC)
        report = scored(scoring, start, end, now, PROCEDURE_IDENTIFIER)
        (self.out / "measure-report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        summary = {
            "engine": info.engine, "export": info.export, "ranAt": now.isoformat(), "seconds": round(seconds, 1),
            "knowledgeVersion": info.knowledge_version, "patientKeys": info.patient_keys,
            "period": {"since": start.isoformat(), "until": end.isoformat()},
            "read": totals.as_dict(), "patients": patients, "procedures": self.rows,
            **scoring.tally.as_dict(),
            "by": {grouping: scoring.grouped(grouping) for grouping in GROUPINGS},
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        return summary
