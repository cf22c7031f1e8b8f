"""`cds-spine report-cards`: a month's (or any period's) report cards, one per clinician, to hand out."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine, select

from ..audit import orders, tables
from ..audit.report_card_pages import pdf_bytes, write_html
from ..audit.report_cards import report_cards
from ..audit.runs import RunOrders
from ..audit.store import PATIENT_HASH_KEY
from ..privacy import PatientIdHasher
from ..settings import Settings
from .audit import reading_engine
from .common import read_knowledge, read_measure, read_period, read_settings


def _hasher(settings: Settings, engine: Engine) -> PatientIdHasher:
    """The audit's keyed hash of patient ids (read, never created: a report only reads)."""
    if settings.audit_hash_key is not None:
        return PatientIdHasher(settings.audit_hash_key.get_secret_value().encode())
    with engine.connect() as connection:
        kept = connection.scalar(select(tables.store_keys.c.value).where(tables.store_keys.c.name == PATIENT_HASH_KEY))
    return PatientIdHasher(bytes.fromhex(str(kept)) if kept else os.urandom(32))


def report_cards_command(
        since: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD, UTC), included.")] = None,
        until: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD, UTC), included.")] = None,
        out: Annotated[Path, typer.Option(help="Folder for report-cards.pdf, index.html and one page per "
                                               "clinician.")] = Path("report-cards"),
        run: Annotated[Path | None, typer.Option(help="A bulk run's folder (audit-bulk --out) instead of the "
                                                      "live audit (CDS_SPINE_DATABASE_URL).")] = None) -> None:
    """Report cards, one per clinician: their orders, adherence per measure component beside the site's median
    and the target, the trend by month, overrides by reason, the orders that missed (by patient hash only):
    a PDF with one A4 page per clinician, and the same as HTML."""
    period = read_period(since, until)
    settings = read_settings()
    knowledge = read_knowledge(settings)
    measure = read_measure(settings, knowledge)
    engine = reading_engine(settings)
    hasher = _hasher(settings, engine)
    if run is not None:
        if not (run / "rows.parquet").is_file():
            typer.echo(f"cds-spine: {run} is not a bulk run (no rows.parquet)", err=True)
            raise typer.Exit(2)
        source: orders.Orders = RunOrders(run)
        plain = RunOrders(run).plain_patient_ids
    else:
        source, plain = orders.StoredOrders(engine), settings.audit_plain_patient_ids
    found = report_cards(source, period, measure, knowledge, settings.adherence_target,
                         hasher if plain else (lambda patient: patient))
    engine.dispose()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report-cards.pdf").write_bytes(pdf_bytes(found))
    pages = write_html(found, out)
    typer.echo(f"{len(found.cards)} report cards ({sum(card.orders for card in found.cards):,} orders) written to "
               f"{out}/: report-cards.pdf, {pages[0].name} and {len(pages) - 1} clinician pages")
