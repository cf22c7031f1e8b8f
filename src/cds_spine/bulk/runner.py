"""One audit of an export under one version of cards/, on either engine, into one run folder: what
`cds-spine audit-bulk` runs once and `cds-spine compare-knowledge` runs twice."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from ..audit.measure import MeasureDefinition
from ..pathway import Knowledge
from .audit import AuditContext, AuditSpec
from .export import ReadTotals
from .outputs import RunInfo, RunWriter

Engine = Literal["local", "spark"]


@dataclass(frozen=True)
class EngineChoice:
    engine: Engine
    spark_master: str
    """The Spark master (CDS_SPINE_SPARK_MASTER) when the engine is spark."""
    workers: int | None = None
    partitions: int | None = None

    @property
    def label(self) -> str:
        return self.engine if self.engine == "local" else f"spark {self.spark_master}"


@dataclass(frozen=True)
class Knowledgebase:
    """One version of cards/, loaded and validated (as at start-up), and where it was read from."""

    cards_dir: Path
    local_code_systems: Path | None
    knowledge: Knowledge
    measure: MeasureDefinition


@dataclass(frozen=True)
class RunResult:
    summary: dict[str, Any]
    totals: ReadTotals
    patients: int


def run_audit(files: list[Path], export: str, base: Knowledgebase, since: date | None, until: date | None,
              hash_key: bytes | None, patient_keys: str, out: Path, choice: EngineChoice,
              progress: Callable[[str], None] | None) -> RunResult:
    """Audit every patient of the export's files with this knowledge, into `out` (rows, summary, MeasureReport)."""
    spec = AuditSpec.of(base.cards_dir, base.local_code_systems, since, until, hash_key)
    writer = RunWriter(out, base.measure, parquet=choice.engine == "local")
    started = time.monotonic()
    if choice.engine == "spark":
        from .spark import run_spark

        totals, patients = run_spark(files, spec, out / "rows.parquet", writer.add, choice.spark_master,
                                     choice.partitions, progress)
    else:
        from .local import run_local

        context = AuditContext(base.knowledge, base.measure, since, until, spec.patient_key())  # loaded once
        totals, patients = run_local(files, context, writer.add, choice.workers, progress, choice.partitions)
    summary = writer.finish(RunInfo(choice.label, export, since, until, base.knowledge.version, patient_keys),
                            totals, patients, time.monotonic() - started)
    return RunResult(summary, totals, patients)
