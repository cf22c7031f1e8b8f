"""Report rows as files: each measure component's populations and rate in columns of their own."""
from __future__ import annotations

import csv
import io
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    """A text a spreadsheet would run as a formula (=, +, -, @, a tab or a carriage return first: names and
    displays come from the EHR's data) is written with a leading apostrophe, as OWASP advises against CSV
    injection; numbers stay numbers."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value


def flat(row: dict[str, Any]) -> dict[str, Any]:
    flat = {key: value for key, value in row.items() if key != "components"}
    for component_id, counts in row.get("components", {}).items():
        flat.update({f"{component_id} {name}": value for name, value in counts.items()})
    return flat


def rows_as_csv(rows: list[dict[str, Any]]) -> str:
    """Report rows as CSV, each component's populations and rate in columns of their own."""
    buffer = io.StringIO()
    flat_rows = [flat(row) for row in rows]
    if flat_rows:
        writer = csv.DictWriter(buffer, fieldnames=list(flat_rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: spreadsheet_cell(value) for key, value in row.items()} for row in flat_rows)
    return buffer.getvalue()

