"""One audited procedure of a bulk run, typed: what the per-patient function returns, what the engines pass
between processes, what rows.parquet and rows.csv hold (one column per field, `component:<id>` per measure
component) and what the reports read back as an order."""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time
from typing import Any, cast

from ..service_ids import ORDER_SIGN
from .measure import Outcome
from .orders import OrderRow

COMPONENT = "component:"


def _column(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


@dataclass(frozen=True)
class BulkRow:
    patient: str
    """As the run shows patient ids: the keyed hash, or the plain id."""
    procedure: str
    date: str
    as_of: str
    """The day the procedure's order is evaluated as of: the day before it was performed."""
    kind: str
    region: str
    detail: str | None
    code: str
    decision: str
    findings: tuple[str, ...]
    components: Mapping[str, str]
    """Each measure component that applies, and its outcome."""
    conservative_days: int
    required_days: int
    conservative_evidence: int
    not_counted: int
    prior_injections: int
    diagnoses: int
    red_flags: int
    unreadable: int
    clinician: str | None
    clinician_name: str | None
    site: str | None
    knowledge_version: str | None
    """The version of cards/ that evaluated it (None in a run written before it was stamped)."""

    @property
    def sort_key(self) -> tuple[str, str, str]:
        """A run's rows are in this order, whichever engine ran it."""
        return self.patient, self.date, self.procedure

    def columns(self, component_ids: Sequence[str]) -> dict[str, Any]:
        """As a row of rows.parquet: the fields (camelCase), each component in a column of its own."""
        found: dict[str, Any] = {}
        for name, column in FIELD_COLUMNS:
            value = getattr(self, name)
            if name == "components":
                found.update({f"{COMPONENT}{cid}": self.components.get(cid) for cid in component_ids})
            else:
                found[column] = list(value) if name == "findings" else value
        return found

    @classmethod
    def column_names(cls, component_ids: Sequence[str]) -> list[str]:
        return [name for field, column in FIELD_COLUMNS for name in (
            [f"{COMPONENT}{cid}" for cid in component_ids] if field == "components" else [column])]

    @classmethod
    def from_table(cls, columns: Mapping[str, Sequence[Any]], positions: Iterable[int] | None = None
                   ) -> Iterator[BulkRow]:
        """Rows of rows.parquet read back from its columns (pyarrow's `to_pydict()`): those at `positions`, else
        all. Column by column: building a dict per row and scanning it for the components cost three times more."""
        plain = [(name, columns.get(column)) for name, column in FIELD_COLUMNS if name not in ("findings", "components")]
        findings = columns["findings"]
        components = [(key.removeprefix(COMPONENT), values) for key, values in columns.items()
                      if key.startswith(COMPONENT)]
        for at in range(len(findings)) if positions is None else positions:
            row: dict[str, Any] = {name: None if values is None else values[at] for name, values in plain}
            yield cls(**row, findings=tuple(findings[at] or ()),
                      components={cid: values[at] for cid, values in components if values[at]})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BulkRow:
        """A row as orjson wrote it (the local engine's partition files)."""
        return cls(**{**values, "findings": tuple(values["findings"])})

    def order(self, index: int) -> OrderRow:
        """The row as the live audit's reports read an order (`index`: its place in the run, from 1)."""
        return _order(index, self.procedure, _day_start(self.date), dict(self.components),
                      **{name: getattr(self, name) for name in ORDER_FIELDS})

    @classmethod
    def orders_from_table(cls, columns: Mapping[str, Sequence[Any]], positions: Iterable[int], first: int = 1
                          ) -> Iterator[OrderRow]:
        """The orders of the rows at `positions` (from 0) of a batch of rows.parquet whose first row is the run's
        `first`, read back from the columns an order is made of (ORDER_COLUMNS and the components): what every
        report and panel of a run reads, without the rest of each row (three times cheaper than building each
        row first)."""
        plain = [(name, columns.get(column)) for name, column in FIELD_COLUMNS if name in ORDER_FIELDS]
        components = [(key.removeprefix(COMPONENT), values) for key, values in columns.items()
                      if key.startswith(COMPONENT)]
        procedures, days = columns["procedure"], columns["date"]
        day_starts: dict[str, datetime] = {}
        for at in positions:
            day = days[at]
            received_at = day_starts.get(day) or day_starts.setdefault(day, _day_start(day))
            yield _order(first + at, procedures[at], received_at, {cid: values[at] for cid, values in components if values[at]},
                         **{name: None if values is None else values[at] for name, values in plain})


def _day_start(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(), UTC)


def _order(index: int, procedure: str, received_at: datetime, outcomes: dict[str, str], **fields: Any) -> OrderRow:
    """A procedure as the live audit's reports read an order: as if signed (order-sign) on the day it was
    performed."""
    return OrderRow(call_id=procedure, assessment_id=index, service_id=ORDER_SIGN, received_at=received_at,
                    outcomes=cast(dict[str, Outcome], outcomes), card_uuid=None, **fields)


FIELD_COLUMNS = tuple((field.name, _column(field.name)) for field in fields(BulkRow))
"""(field, its column in rows.parquet), worked out once: a run's reports read every row back (a regular
expression per field per row was 35 µs a row, 7 s for a run of 200,000 procedures)."""
ORDER_FIELDS = ("clinician", "clinician_name", "site", "kind", "region", "decision", "knowledge_version", "patient")
"""The fields an order takes as they are, besides the procedure, its day and the components."""
ORDER_COLUMNS = frozenset(column for name, column in FIELD_COLUMNS if name in {*ORDER_FIELDS, "procedure", "date"})
"""The columns of rows.parquet an order is read from, with the components'."""
