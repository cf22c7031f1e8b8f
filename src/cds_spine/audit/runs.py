"""Bulk runs the dashboard can open: the `--out` folders of `cds-spine audit-bulk` under
CDS_SPINE_BULK_RUNS_DIR, each read as a report's orders (orders.Orders), so that every report and
filter of the live audit works on the past too."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from ..service_ids import ORDER_SIGN
from .measure import MeasureDefinition
from .orders import OrderRow, Period, Traffic

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
COMPONENT = "component:"


def order_row(row: dict, index: int) -> OrderRow:
    """A bulk row (as written to rows.parquet) as the live audit's reports read an order: the procedure is
    its order, as if signed (order-sign) on the day it was performed."""
    return OrderRow(call_id=row["procedure"], assessment_id=index, service_id=ORDER_SIGN,
                    received_at=datetime.combine(date.fromisoformat(row["date"]), time(), UTC),
                    clinician=row["clinician"], clinician_name=row["clinicianName"], site=row["site"],
                    kind=row["kind"], region=row["region"], decision=row["decision"],
                    outcomes={key.removeprefix(COMPONENT): value for key, value in row.items()
                              if key.startswith(COMPONENT) and value},
                    card_uuid=None)


@dataclass(frozen=True)
class RunOrders:
    folder: Path

    def rows(self, period: Period, measure: MeasureDefinition, services: Sequence[str] = (ORDER_SIGN,),
             progress: Callable[[int], None] | None = None) -> Iterator[OrderRow]:
        import pyarrow.parquet as pq  # only when a run is read: the service does not load it otherwise

        if ORDER_SIGN not in services:
            return
        for index, row in enumerate(pq.read_table(self.folder / "rows.parquet").to_pylist(), start=1):
            day = date.fromisoformat(row["date"])
            if (period.since is None or day >= period.since) and (period.until is None or day <= period.until):
                yield order_row(row, index)

    def traffic(self, period: Period) -> Traffic:
        return Traffic({}, {}, {})  # a bulk run has procedures, not calls


def _summary(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_runs(runs_dir: Path | None) -> list[dict]:
    """The finished runs (a summary.json and rows.parquet), newest first."""
    found = []
    for folder in sorted(runs_dir.iterdir()) if runs_dir and runs_dir.is_dir() else ():
        summary = _summary(folder) if RUN_NAME.fullmatch(folder.name) and (folder / "rows.parquet").is_file() else None
        if summary:
            found.append({"id": folder.name, "ranAt": summary["ranAt"], "engine": summary["engine"],
                          "export": summary["export"], "period": summary["period"],
                          "patients": summary["patients"], "procedures": summary["procedures"],
                          "problems": sum(summary["read"]["problems"].values())})
    return sorted(found, key=lambda run: run["ranAt"], reverse=True)


def find_run(runs_dir: Path | None, name: str) -> RunOrders | None:
    if not runs_dir or not RUN_NAME.fullmatch(name):
        return None
    folder = runs_dir / name
    return RunOrders(folder) if (folder / "rows.parquet").is_file() and _summary(folder) else None
