"""Bulk runs the dashboard can open: the `--out` folders of `cds-spine audit-bulk` under
CDS_SPINE_BULK_RUNS_DIR, each read as a report's orders (orders.Orders), so that every report and
filter of the live audit works on the past too, and its procedures can be browsed as the live decisions are
(`decisions`, `decision`)."""
from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from pathlib import Path
from typing import Any

from ..pathway.knowledge import Knowledge
from ..service_ids import ORDER_SIGN
from .bulk_rows import COMPONENT, ORDER_COLUMNS, BulkRow
from .filters import Filters
from .measure import MeasureDefinition
from .orders import OrderRow, ReportPeriod, Traffic

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ORDER_BATCH = 10_000
"""Rows of a run made into orders at a time."""


@dataclass(frozen=True)
class RunOrders:
    folder: Path

    def rows(self, period: ReportPeriod, measure: MeasureDefinition, services: Sequence[str] = (ORDER_SIGN,),
             progress: Callable[[int], None] | None = None) -> Iterator[OrderRow]:
        if ORDER_SIGN in services:
            yield from self.orders(period)

    def orders(self, period: ReportPeriod) -> Iterator[OrderRow]:
        """The run's procedures in the period, as orders, in the run's order; only the columns an order is made of
        are read, a batch of rows at a time: a report of a run of any size holds one batch's Python objects, not
        the run's (the dashboard's seven requests on a run of 200,000 procedures took the service to 2.5 GB)."""
        import pyarrow.parquet as pq  # only when a run is read: the service does not load it otherwise

        rows = pq.ParquetFile(self.folder / "rows.parquet")
        columns = [name for name in rows.schema_arrow.names if name in ORDER_COLUMNS or name.startswith(COMPONENT)]
        first = 1
        for batch in rows.iter_batches(batch_size=ORDER_BATCH, columns=columns):
            found = batch.to_pydict()
            yield from BulkRow.orders_from_table(found, (
                at for at, day in enumerate(map(date.fromisoformat, found["date"]))
                if (period.since is None or day >= period.since) and (period.until is None or day <= period.until)),
                first)
            first += batch.num_rows

    def bulk_rows_at(self, places: Iterable[int]) -> dict[int, BulkRow]:
        """The rows at these places in the run (from 1; a place past the run has none), reading only the row groups
        that hold them, one at a time: opening a procedure, or a page of them, in a run of millions decodes a few
        batches of rows, not the run."""
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(self.folder / "rows.parquet")
        starts = list(accumulate((rows.metadata.row_group(group).num_rows for group in range(rows.num_row_groups)),
                                 initial=0))
        by_group: dict[int, list[int]] = {}
        for place in places:
            if 0 < place <= starts[-1]:
                by_group.setdefault(bisect_right(starts, place - 1) - 1, []).append(place)
        found: dict[int, BulkRow] = {}
        for group, held in sorted(by_group.items()):
            batch = rows.read_row_group(group).take([place - 1 - starts[group] for place in held])
            found.update(zip(held, BulkRow.from_table(batch.to_pydict()), strict=True))
        return found

    def traffic(self, period: ReportPeriod) -> Traffic:
        return Traffic({}, {}, {})  # a bulk run has procedures, not calls

    @property
    def plain_patient_ids(self) -> bool:
        """Whether the run's rows show plain patient ids (audit-bulk with CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS)."""
        summary = _summary(self.folder) or {}
        return str(summary.get("patientKeys", "")).startswith("plain")


def _summary(folder: Path) -> dict[str, Any] | None:
    try:
        found = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        return found if isinstance(found, dict) else None
    except (OSError, ValueError):
        return None


COMPARED = ("baseline", "candidate")
"""The two runs of a `cds-spine compare-knowledge --out` folder, opened as `<folder>.baseline` and
`<folder>.candidate`."""


def _run_folders(runs_dir: Path) -> Iterator[tuple[str, Path]]:
    """(id, folder) of every run: the `audit-bulk` runs, and the two runs of each comparison."""
    for folder in sorted(runs_dir.iterdir()):
        if not RUN_NAME.fullmatch(folder.name):
            continue
        yield folder.name, folder
        for side in COMPARED:
            yield f"{folder.name}.{side}", folder / side


def list_runs(runs_dir: Path | None) -> list[dict[str, Any]]:
    """The finished runs (a summary.json and rows.parquet), newest first."""
    found = []
    for run_id, folder in _run_folders(runs_dir) if runs_dir and runs_dir.is_dir() else ():
        summary = _summary(folder) if (folder / "rows.parquet").is_file() else None
        if summary:
            found.append({"id": run_id, "ranAt": summary["ranAt"], "engine": summary["engine"],
                          "export": summary["export"], "period": summary["period"],
                          "patients": summary["patients"], "procedures": summary["procedures"],
                          "problems": sum(summary["read"]["problems"].values()),
                          "knowledgeVersion": summary.get("knowledgeVersion")})
    return sorted(found, key=lambda run: run["ranAt"], reverse=True)


def find_run(runs_dir: Path | None, name: str) -> RunOrders | None:
    if not runs_dir or not RUN_NAME.fullmatch(name):
        return None
    folder = runs_dir / name
    stem, _, side = name.rpartition(".")
    if not (folder / "rows.parquet").is_file() and side in COMPARED and RUN_NAME.fullmatch(stem):
        folder = runs_dir / stem / side
    return RunOrders(folder) if (folder / "rows.parquet").is_file() and _summary(folder) else None


def decisions(run: RunOrders, period: ReportPeriod, knowledge: Knowledge, page: int, page_size: int,
              filters: Filters) -> dict[str, Any]:
    """The run's procedures, newest first, filtered as the live decisions are, in the live decisions' shape: one
    order each, evaluated as of the day before it was performed; no cards, so nothing overridden."""
    kept = sorted(((order.received_at, order.call_id, order.assessment_id) for order in run.orders(period)
                   if filters.admits(order)), key=lambda found: found[:2], reverse=True)
    start = (page - 1) * page_size
    shown = [index for _, _, index in kept[start:start + page_size]]
    rows = run.bulk_rows_at(shown)
    return {"period": period.as_dict(), "page": page, "pageSize": page_size, "total": len(kept),
            "items": [_procedure_json(index, rows[index], knowledge, full=False) for index in shown]}


def decision(run: RunOrders, knowledge: Knowledge, row_id: str) -> dict[str, Any] | None:
    """One procedure of the run in full, by its place in the run (`id` in `decisions`): its findings with their
    severity, and what the record held (counts: a run keeps no evidence lists)."""
    if not row_id.isdecimal() or row_id != str(int(row_id)):
        return None
    row = run.bulk_rows_at([int(row_id)]).get(int(row_id))
    return None if row is None else _procedure_json(int(row_id), row, knowledge, full=True)


def _procedure_json(index: int, row: BulkRow, knowledge: Knowledge, full: bool) -> dict[str, Any]:
    findings = knowledge.config.findings
    severity = {code: findings[code].severity if code in findings else "info" for code in row.findings}
    order: dict[str, Any] = {
        "reference": row.procedure, "category": row.kind, "region": row.region, "detail": row.detail,
        "codes": [row.code], "decision": row.decision, "components": dict(row.components),
        "conservativeDays": row.conservative_days, "requiredDays": row.required_days,
        "lead": next((code for code in row.findings if severity[code] != "note"), None),
        "findings": [{"code": code, "severity": severity[code]} for code in row.findings] if full else
        list(row.findings)}
    if full:
        order["record"] = {"conservativeEvidence": row.conservative_evidence, "notCounted": row.not_counted,
                           "priorInjections": row.prior_injections, "diagnoses": row.diagnoses,
                           "redFlags": row.red_flags, "unreadable": row.unreadable}
    return {"id": str(index), "source": "bulk", "receivedAt": row.date, "performedOn": row.date,
            "asOf": row.as_of, "service": ORDER_SIGN, "clinician": row.clinician,
            "clinicianName": row.clinician_name, "site": row.site, "patient": row.patient, "encounter": None,
            "knowledgeVersion": row.knowledge_version, "orders": [order], "cards": [], "overridden": False}
