"""The Spark engine: the same reading (export.read_file) and the same per-patient function (audit_patient)
as the local engine, run by Spark: one task per export file reads it, Spark groups the kept lines by
patient (its shuffle is the out-of-core grouping), and one task per patient partition audits them. The
rows are sorted by Spark (range-partitioned) and written by the executors, one Parquet part file per
partition in row order, into the run's rows.parquet folder (a file system the driver and the executors
share); the driver then streams the part files, in order, for rows.csv and the measure's tallies: no row
is collected through Spark.

What reaches the executors: the AuditSpec (cards/ as bytes, the period, the hash key) and the
Medications, as broadcast variables; each executor's Python worker builds the knowledge from the
broadcast cards/ once. The executors need cds-spine itself importable (its wheel; see docs/quality.md) and the
export's files at the same path (a shared file system).
"""
from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..audit.bulk_rows import BulkRow
from .audit import AuditContext, AuditSpec, PatientAudit, audit_patient, row_order
from .export import SHARED, ReadTotals, read_file
from .outputs import row_schema

_contexts: dict[str, AuditContext] = {}


def _context(spec: AuditSpec) -> AuditContext:
    """One context per Python worker process (a worker runs many tasks)."""
    if spec.fingerprint not in _contexts:
        _contexts[spec.fingerprint] = spec.context()
    return _contexts[spec.fingerprint]


def run_spark(files: list[Path], spec: AuditSpec, rows_dir: Path, add_row: Callable[[BulkRow], None], master: str,
              partitions: int | None = None, report: Callable[[str], None] | None = None,
              audit: PatientAudit = audit_patient) -> tuple[ReadTotals, int]:
    """Audit the export on Spark (`master`: local[*], spark://host:7077, yarn, k8s://...): the executors
    write the rows into `rows_dir`; each row, in order, then goes to `add_row`. Returns the reading totals
    and the number of patients. (`audit` as in run_local.)"""
    return _run(_spark_context(master, report is not None), files, spec, rows_dir, add_row, partitions, report,
                audit)


def _spark_context(master: str, show_progress: bool) -> Any:
    """The process's one Spark application, started by its first audit and stopped when the process ends:
    compare-knowledge's two audits share it (starting a driver and its executors' Python workers again cost
    about 15 s on 2 cores)."""
    from pyspark.sql import SparkSession

    if master.startswith("local"):  # the driver's Python (its venv, with cds-spine) runs the tasks
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    started = SparkSession.getActiveSession() is not None
    spark = SparkSession.builder.master(master).appName("cds-spine audit-bulk").config(
        "spark.ui.showConsoleProgress", str(show_progress).lower()).getOrCreate()
    if not started:
        atexit.register(spark.stop)  # before py4j's own exit handler, which kills the driver's JVM
    return spark.sparkContext


def _run(sc: Any, files: list[Path], spec: AuditSpec, rows_dir: Path, add_row: Callable[[BulkRow], None],
         partitions: int | None, report: Callable[[str], None] | None, audit: PatientAudit) -> tuple[ReadTotals, int]:
    from pyspark import StorageLevel

    storage = StorageLevel.MEMORY_AND_DISK
    spec_b = sc.broadcast(spec)

    def scan(paths: Iterator[str]) -> Iterator[tuple[Any, ...]]:
        context = _context(spec_b.value)
        for path in paths:
            totals = ReadTotals()
            yield from read_file(Path(path), context.knowledge, totals)
            yield None, totals

    scanned = sc.parallelize([str(path) for path in files], max(1, len(files))) \
        .mapPartitions(scan).persist(storage)
    totals = ReadTotals()
    for found in scanned.filter(lambda kept: kept[0] is None).values().collect():
        totals.merge(found)
    if report:
        report(f"{totals.lines:,} resources read")
    medication_lines = scanned.filter(lambda kept: kept[0] == SHARED).values().collect()
    medications_b = sc.broadcast({orjson.loads(line).get("id"): line for line in medication_lines})

    def audit_partition(patients: Iterator[tuple[str, Iterable[bytes]]]) -> Iterator[tuple[Any, ...]]:
        context = _context(spec_b.value)
        count = 0
        for patient, lines in patients:
            count += 1
            for row in audit(patient, lines, medications_b.value, context):
                yield "row", row
        yield "patients", count

    grouped = scanned.filter(lambda kept: kept[0] is not None and kept[0] != SHARED) \
        .groupByKey(partitions or sc.defaultParallelism)
    audited = grouped.mapPartitions(audit_partition).persist(storage)
    patients = sum(audited.filter(lambda item: item[0] == "patients").values().collect())
    rows_dir.mkdir(parents=True, exist_ok=True)
    target = str(rows_dir)

    def write_part(index: int, rows: Iterator[BulkRow]) -> Iterator[int]:
        """On the executor: this partition's rows, in order, as part-<index>.parquet."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        components = [component.id for component in _context(spec_b.value).measure.components]
        schema = row_schema(components)
        table = pa.Table.from_pylist([row.columns(components) for row in rows], schema=schema)
        pq.write_table(table, f"{target}/part-{index:05d}.parquet")
        yield table.num_rows

    written = audited.filter(lambda item: item[0] == "row").values() \
        .sortBy(row_order, numPartitions=max(1, partitions or sc.defaultParallelism)) \
        .mapPartitionsWithIndex(write_part).sum()
    for row in _read_parts(rows_dir):
        add_row(row)
    if report:
        report(f"{written:,} rows written by the executors")
    if report:
        report(f"{patients:,} patients audited")
    scanned.unpersist()
    audited.unpersist()
    return totals, patients


def _read_parts(rows_dir: Path) -> Iterator[BulkRow]:
    """The executors' part files, in order, streamed in batches."""
    import pyarrow.parquet as pq

    for part in sorted(rows_dir.glob("part-*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=10_000):
            yield from BulkRow.from_table(batch.to_pydict())
