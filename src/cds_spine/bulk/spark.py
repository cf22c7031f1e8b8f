"""The Spark engine: the same reading (export.read_file) and the same per-patient function (audit_patient)
as the local engine, run by Spark: one task per export file reads it, Spark groups the kept lines by
patient (its shuffle is the out-of-core grouping), and one task per patient partition audits them.

What reaches the executors: the AuditSpec (cards/ as bytes, the period, the hash key) and the
Medications, as broadcast variables; each executor's Python worker builds the knowledge from the
broadcast cards/ once. The executors need cds-spine itself importable (its wheel; see README) and the
export's files at the same path (a shared file system).
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..audit.bulk_rows import BulkRow
from .audit import AuditContext, AuditSpec, PatientAudit, audit_patient, row_order
from .export import SHARED, ReadTotals, read_file

_contexts: dict[str, AuditContext] = {}


def _context(spec: AuditSpec) -> AuditContext:
    """One context per Python worker process (a worker runs many tasks)."""
    if spec.fingerprint not in _contexts:
        _contexts[spec.fingerprint] = spec.context()
    return _contexts[spec.fingerprint]


def run_spark(files: list[Path], spec: AuditSpec, add_row: Callable[[BulkRow], None], master: str,
              partitions: int | None = None, report: Callable[[str], None] | None = None,
              audit: PatientAudit = audit_patient) -> tuple[ReadTotals, int]:
    """Audit the export on Spark (`master`: local[*], spark://host:7077, yarn, k8s://...); each row, in
    order, to `add_row`. Returns the reading totals and the number of patients. (`audit` as in
    run_local.)"""
    from pyspark.sql import SparkSession

    if master.startswith("local"):  # the driver's Python (its venv, with cds-spine) runs the tasks
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = SparkSession.builder.master(master).appName("cds-spine audit-bulk").config(
        "spark.ui.showConsoleProgress", str(report is not None).lower()).getOrCreate()
    try:
        return _run(spark.sparkContext, files, spec, add_row, partitions, report, audit)
    finally:
        spark.stop()


def _run(sc: Any, files: list[Path], spec: AuditSpec, add_row: Callable[[BulkRow], None], partitions: int | None,
         report: Callable[[str], None] | None, audit: PatientAudit) -> tuple[ReadTotals, int]:
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
    for row in audited.filter(lambda item: item[0] == "row").values().sortBy(row_order).toLocalIterator():
        add_row(row)
    if report:
        report(f"{patients:,} patients audited")
    scanned.unpersist()
    audited.unpersist()
    return totals, patients
