"""The command line: cds-spine serve | migrate | evaluate | check-config | report | audit-key | audit-bulk |
test-token | send | compare-knowledge |
report-cards."""
from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from . import audit, check, compare, report_cards, service

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="cds-spine: a CDS Hooks service for conservative therapy before ESI or spine surgery.")


def _version(show: bool) -> None:
    if show:
        typer.echo(f"cds-spine {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """cds-spine: a CDS Hooks service for conservative therapy before ESI or spine surgery."""


app.command()(service.serve)
app.command("migrate")(service.migrate_store)
app.command()(service.evaluate)
app.command("check-config")(check.check_config)
app.command()(audit.report)
app.command("audit-key")(audit.audit_key)
app.command("test-token")(service.test_token)
app.command()(service.send)
app.command("audit-bulk")(audit.audit_bulk)
app.command("compare-knowledge")(compare.compare_knowledge)
app.command("report-cards")(report_cards.report_cards_command)
