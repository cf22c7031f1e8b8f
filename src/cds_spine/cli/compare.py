"""`cds-spine compare-knowledge`: a change to cards/ replayed over the past before it goes live."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..audit.measure import load_measure
from ..pathway import KnowledgeError, load_knowledge
from .audit import BulkEngine, patient_keys_of
from .common import read_period, read_settings


def compare_knowledge(
        export: Annotated[Path, typer.Argument(help="A FHIR Bulk Data export, as audit-bulk reads it.")],
        baseline: Annotated[Path, typer.Option(help="The cards/ folder in use (or the last release).")],
        candidate: Annotated[Path, typer.Option(help="The changed cards/ folder to try.")],
        out: Annotated[Path, typer.Option(help="Folder for changes.csv, summary.json, report.md and the two runs "
                                               "(baseline/, candidate/).")] = Path("compare-knowledge"),
        since: Annotated[str | None, typer.Option(help="First procedure day (YYYY-MM-DD), included.")] = None,
        until: Annotated[str | None, typer.Option(help="Last procedure day (YYYY-MM-DD), included.")] = None,
        engine: Annotated[BulkEngine, typer.Option(help="local: every core of this machine; spark: "
                                                        "CDS_SPINE_SPARK_MASTER.")] = BulkEngine.local,
        workers: Annotated[int | None, typer.Option(min=1, help="local: processes (default: every core).")] = None,
        partitions: Annotated[int | None, typer.Option(min=1, help="Patient partitions (default: by size).")] = None,
        quiet: Annotated[bool, typer.Option(help="No progress lines.")] = False) -> None:
    """What a change to cards/ would have done to the past: the export audited under the baseline and the
    candidate knowledge (both validated first, as at start-up), and every procedure whose decision or
    findings differ. Exit 0: done; 2: a knowledge folder is invalid or the export cannot be read."""
    from ..bulk.compare import Side, compare, read_rows
    from ..bulk.export import ExportError, export_files
    from ..bulk.runner import EngineChoice, Knowledgebase, run_audit

    period = read_period(since, until)
    settings = read_settings()
    bases = {}
    for name, cards_dir in (("baseline", baseline), ("candidate", candidate)):
        try:
            knowledge = load_knowledge(cards_dir, settings.local_code_systems)
            bases[name] = Knowledgebase(cards_dir, settings.local_code_systems, knowledge,
                                        load_measure(cards_dir, knowledge))
        except KnowledgeError as exc:
            typer.echo(f"cds-spine: invalid clinical knowledge (--{name} {cards_dir}): {exc}", err=True)
            raise typer.Exit(2) from None
    try:
        files = export_files(export)
    except ExportError as exc:
        typer.echo(f"cds-spine: {exc}", err=True)
        raise typer.Exit(2) from None
    hash_key, patient_keys = patient_keys_of(settings)  # one key for both runs: their rows join
    choice = EngineChoice("spark" if engine is BulkEngine.spark else "local", settings.spark_master, workers, partitions)
    progress = None if quiet else (lambda line: typer.echo(line, err=True))
    sides = []
    for name, base in bases.items():
        if progress:
            progress(f"{name}: knowledge {base.knowledge.version} from {base.cards_dir}")
        result = run_audit(files, str(export), base, period.since, period.until, hash_key, patient_keys, out / name,
                           choice, progress)
        sides.append(Side(name, base.knowledge, read_rows(out / name), result.summary))
    summary = compare(sides[0], sides[1], out)
    typer.echo(f"{summary['procedures']:,} procedures, {summary['changed']:,} changed; cards per 1,000 procedures "
               f"{summary['baseline']['cardsPer1000']} -> {summary['candidate']['cardsPer1000']}; written to {out}/ "
               f"(report.md, changes.csv, summary.json)")
