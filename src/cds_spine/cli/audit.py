"""The audit from the command line: reports and the MeasureReport of the live audit, audit users' keys, and the audit of the past from a Bulk Data export."""
from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import Engine

from ..audit import formats, orders, scoring
from ..audit.access import key_hash, new_key
from ..audit.db import StoreProblem, open_engine, schema_problem, shown_url, sqlite_file_missing
from ..audit.orders import Grouping
from ..printable import printable
from ..service_ids import ORDER_SIGN
from ..settings import AuditUser, Settings
from .common import (
    read_knowledge,
    read_measure,
    read_period,
    read_settings,
    store_exit,
)


class By(str, Enum):
    """The report's groupings (audit.orders.Grouping)."""

    month = "month"
    clinician = "clinician"
    order_kind = "order-kind"
    region = "region"
    site = "site"
    service = "service"
    knowledge = "knowledge"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    measure_report = "measure-report"


PROGRESS_THRESHOLD = 5000


def _cell(key: str, value: Any) -> str:
    if key.endswith("Rate") or key.endswith(" rate"):
        return "–" if value is None else f"{value * 100:.1f}%"
    return printable(str(value))


def _table(rows: list[dict[str, Any]]) -> str:
    """The report as a text table: the overall measure, each component's rate, the overrides."""
    components = [cid for cid in rows[0]["components"]][1:]
    columns = [("label", "Group"), ("orders", "Orders"), ("excluded", "Excluded"), ("adherent", "Adherent"),
               ("adherenceRate", "Adherence"), *((f"{cid} rate", cid) for cid in components),
               ("cards", "Cards"), ("overridden", "Overridden"), ("overrideRate", "Override rate")]
    flat = [formats.flat(row) for row in rows]
    cells = [[title for _, title in columns]] + [[_cell(key, row[key]) for key, _ in columns] for row in flat]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(line, widths, strict=True))) for line in cells)


def reading_engine(settings: Settings) -> Engine:
    """The audit store, to read: a store that does not exist or is not migrated is exit 3 (nothing created)."""
    engine = open_engine(settings.database_url)
    problem: str | None
    if sqlite_file_missing(engine):  # a report reads; it never creates or migrates a store
        problem = (f"no audit store at {shown_url(settings.database_url)} (the file does not exist; "
                   f"check CDS_SPINE_DATABASE_URL)")
    else:
        problem = schema_problem(engine)
    if problem:
        engine.dispose()
        raise store_exit(StoreProblem(problem))
    return engine


def report(since: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD, UTC), included.")] = None,
           until: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD, UTC), included.")] = None,
           by: Annotated[By, typer.Option(help="Group orders by.")] = By.month,
           output: Annotated[Format, typer.Option("--format", help=(
               "Output format; measure-report: the FHIR MeasureReport of the period (needs --since and "
               "--until)."))] = Format.table) -> None:
    """Pathway adherence (the Measure's components) and overrides from the audit store (CDS_SPINE_DATABASE_URL)."""
    period = read_period(since, until)
    if output is Format.measure_report and not (period.since and period.until):
        raise typer.BadParameter("a MeasureReport needs --since and --until", param_hint="--format")
    settings = read_settings()
    measure = read_measure(settings, read_knowledge(settings))
    engine = reading_engine(settings)
    if output is Format.measure_report:
        from ..audit import measure_report  # fhir.resources' MeasureReport: only when one is asked for

        assert period.since and period.until  # checked above
        document = measure_report.measure_report(engine, measure, period.since, period.until, datetime.now(UTC))
        engine.dispose()
        typer.echo(json.dumps(document, indent=2))
        return
    grouping: Grouping = by.value
    services = orders.ORDER_SERVICES if grouping == "service" else (ORDER_SIGN,)
    total = orders.count_orders(engine, period, services)
    if total >= PROGRESS_THRESHOLD:
        with typer.progressbar(length=total, label="Scanning decisions", file=sys.stderr) as bar:
            rows = scoring.grouped(orders.StoredOrders(engine), period, grouping, measure, progress=bar.update)
    else:
        rows = scoring.grouped(orders.StoredOrders(engine), period, grouping, measure)
    engine.dispose()
    if output is Format.json:
        typer.echo(json.dumps({"period": period.as_dict(), "by": by.value, "rows": rows}, indent=2))
    elif output is Format.csv:
        typer.echo(formats.rows_as_csv(rows), nl=False)
    else:
        typer.echo(_table(rows) if rows else "No orders evaluated in this period.")


def audit_key(name: Annotated[str, typer.Argument(help="The user's name, as the access log will show it.")],
              role: Annotated[str, typer.Argument(help="viewer, or analyst (may see plain patient ids).")]) -> None:
    """Make an API key for a named audit user (NAME.<random>: wrong keys naming a user lock that user after
    CDS_SPINE_AUDIT_MAX_FAILURES_PER_USER): the key to hand to the user (once), and the entry to add to
    CDS_SPINE_AUDIT_USERS (which keeps only its SHA-256)."""
    try:
        user = AuditUser(name=name, role=role, key_sha256="0" * 64)
    except ValidationError as exc:
        typer.echo(f"cds-spine: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None
    key = new_key(user.name)
    typer.echo(f"key (give it to {name}; it is not stored): {key}")
    entry = user.model_copy(update={"key_sha256": key_hash(key)}).model_dump()
    typer.echo(f"CDS_SPINE_AUDIT_USERS entry: {json.dumps(entry)}")


class BulkEngine(str, Enum):
    local = "local"
    spark = "spark"


def patient_keys_of(settings: Settings) -> tuple[bytes | None, str]:
    """How a bulk run shows patient ids: as the live audit does (the same keyed hash, so the two can be
    joined), plain when the audit keeps plain ids, else a keyed hash with a key of this run only."""
    if settings.audit_plain_patient_ids:
        return None, "plain patient ids (CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS)"
    if settings.audit_hash_key is not None:
        return settings.audit_hash_key.get_secret_value().encode(), "keyed hash (CDS_SPINE_AUDIT_HASH_KEY)"
    return os.urandom(32), ("keyed hash with a key of this run only (set CDS_SPINE_AUDIT_HASH_KEY to match the "
                            "live audit's keys)")


def _problem_lines(summary: dict[str, Any]) -> list[str]:
    read = summary["read"]
    lines = [f"problem: {count:,} {kind}" for kind, count in read["problems"].items()]
    lines += [f"  {p['file']} line {p['line']}: {p['kind']}: {p['detail']}" for p in read["problemExamples"]]
    return lines


def audit_bulk(
        export: Annotated[Path, typer.Argument(help=(
            "A FHIR Bulk Data export: a folder of .ndjson or .ndjson.gz files, one such file, or the export's "
            "manifest (JSON with output[].url)."))],
        since: Annotated[str | None, typer.Option(help="First procedure day (YYYY-MM-DD), included; default: "
                                                       "the export's first.")] = None,
        until: Annotated[str | None, typer.Option(help="Last procedure day (YYYY-MM-DD), included; default: "
                                                       "the export's last.")] = None,
        out: Annotated[Path, typer.Option(help="Folder for rows.parquet, rows.csv, summary.json and "
                                               "measure-report.json.")] = Path("audit-bulk"),
        engine: Annotated[BulkEngine, typer.Option(help="local: every core of this machine; spark: "
                                                        "CDS_SPINE_SPARK_MASTER (default local[*]).")] = BulkEngine.local,
        workers: Annotated[int | None, typer.Option(min=1, help="local: processes (default: every core).")] = None,
        partitions: Annotated[int | None, typer.Option(min=1, help="Patient partitions (default: by size).")] = None,
        quiet: Annotated[bool, typer.Option(help="No progress lines.")] = False) -> None:
    """Audit the past: every completed ESI and spine-surgery Procedure of a FHIR Bulk Data export, evaluated
    as of the day before it with the live service's pathway and cards/. Exit 0: done; 1: done, but some
    input could not be read (counted in summary.json, with file and line); 2: the export cannot be read."""
    from ..bulk.export import ExportError, export_files
    from ..bulk.runner import EngineChoice, Knowledgebase, run_audit

    period = read_period(since, until)
    settings = read_settings()
    knowledge = read_knowledge(settings)
    base = Knowledgebase(settings.knowledge_dir(), settings.local_code_systems, knowledge,
                         read_measure(settings, knowledge))
    try:
        files = export_files(export)
    except ExportError as exc:
        typer.echo(f"cds-spine: {exc}", err=True)
        raise typer.Exit(2) from None
    hash_key, patient_keys = patient_keys_of(settings)
    result = run_audit(files, str(export), base, period.since, period.until, hash_key, patient_keys, out,
                       EngineChoice("spark" if engine is BulkEngine.spark else "local", settings.spark_master, workers,
                                    partitions),
                       None if quiet else (lambda line: typer.echo(line, err=True)))
    summary, totals, patients = result.summary, result.totals, result.patients
    asked = f"{period.since or 'the first'} to {period.until or 'the last'} procedure day" \
        if period.since or period.until else "the export's whole period"
    audited = f"{summary['period']['since']} to {summary['period']['until']}" if summary["procedures"] else asked
    typer.echo(f"{len(files)} files, {totals.lines:,} resources read, {totals.kept:,} kept; {patients:,} patients; "
               f"{summary['procedures']:,} procedures audited ({audited}); written to {out}/")
    if summary["procedures"]:
        typer.echo(_table(summary["by"]["month"]))
    else:
        read = ", ".join(f"{count:,} {kind}" for kind, count in totals.resources.most_common(6)) or "nothing"
        typer.echo(f"No completed ESI, regenerative-injection or spine-surgery Procedure in {asked}: the export "
                   f"holds {read}. To try the audit, make an export that has them, from the checkout: `.venv/bin/python -m bench.bulk_export "
                   f"--patients 1000 --out /tmp/export` (docs/quality.md).")
    problems = _problem_lines(summary)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(1)
