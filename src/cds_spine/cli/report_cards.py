"""`cds-spine report-cards`: a month's (or any period's) report cards, one per clinician, to hand out."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..audit import orders
from ..audit.report_cards import report_cards
from ..audit.runs import RunOrders
from .audit import reading_engine
from .common import read_knowledge, read_measure, read_period, read_settings


def report_cards_command(
        since: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD, UTC), included.")] = None,
        until: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD, UTC), included.")] = None,
        out: Annotated[Path, typer.Option(help="Folder for report-cards.pdf, index.html and one page per "
                                               "clinician.")] = Path("report-cards"),
        run: Annotated[Path | None, typer.Option(help="A bulk run's folder (audit-bulk --out) instead of the "
                                                      "live audit (CDS_SPINE_DATABASE_URL).")] = None) -> None:
    """Report cards, one per clinician: their orders, adherence per measure component beside the site's median
    and the target, the trend by month, overrides by reason, every order that missed (its patient by record id
    where the audit keeps plain ids, else by keyed hash): a PDF with an A4 page per clinician (further pages for a
    long list of missed orders), and the same as HTML."""
    from ..audit.report_card_pages import pdf_bytes, write_html  # fpdf and jinja2 (0.36 s): only for this command

    period = read_period(since, until)
    settings = read_settings()
    knowledge = read_knowledge(settings)
    measure = read_measure(settings, knowledge)
    engine = reading_engine(settings)
    if run is not None:
        if not (run / "rows.parquet").is_file():
            typer.echo(f"cds-spine: {run} is not a bulk run (no rows.parquet)", err=True)
            raise typer.Exit(2)
        source: orders.Orders = RunOrders(run)
        plain = RunOrders(run).plain_patient_ids
    else:
        source, plain = orders.StoredOrders(engine), settings.audit_plain_patient_ids
    found = report_cards(source, period, measure, knowledge, settings.adherence_target,
                         lambda patient: patient, patients_plain=plain)  # the operator reads the store itself
    engine.dispose()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report-cards.pdf").write_bytes(pdf_bytes(found))
    pages = write_html(found, out)
    typer.echo(f"{len(found.cards)} report cards ({sum(card.orders for card in found.cards):,} orders) written to "
               f"{out}/: report-cards.pdf, {pages[0].name} and {len(pages) - 1} clinician pages")
