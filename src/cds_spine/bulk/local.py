"""The local engine: every core of one machine, memory bounded by a partition, never by the export.

1. Read: the export's files are read in parallel (one process per file at a time); each kept line goes
   to one of P partition files on disk, chosen by a hash of its patient, and Medications to a file of
   their own. That is the out-of-core grouping: a patient's lines all land in one partition.
2. Audit: the partitions are audited in parallel; a process loads one partition, groups it by patient,
   calls audit_patient for each, and writes the partition's rows sorted. P is chosen so that a partition
   holds a few tens of MB whatever the export's size (`partition_bytes`).
3. The sorted partitions are merged into the run's rows (outputs.RunWriter) in one order.
"""
from __future__ import annotations

import heapq
import multiprocessing
import os
import tempfile
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from ..audit.bulk_rows import BulkRow
from .audit import AuditContext, PatientAudit, audit_patient, row_order
from .export import SHARED, ReadTotals, read_file

PARTITION_BYTES = 256 * 1024 * 1024
"""Input bytes (gzip counted eight-fold) per partition: about 5 % of a record is kept, so a partition
holds a few tens of MB of kept lines."""
GZIP_RATIO = 8


def partition_of(patient: str, partitions: int) -> int:
    """Stable across processes and runs (Python's own hash of a str is salted per process)."""
    return zlib.crc32(patient.encode()) % partitions


def partition_count(files: list[Path], workers: int) -> int:
    size = sum(path.stat().st_size * (GZIP_RATIO if path.name.endswith(".gz") else 1) for path in files)
    return max(2 * workers, -(-size // PARTITION_BYTES))


class Progress:
    """Resources read and patients audited, with their rates, on stderr every `every` seconds."""

    def __init__(self, report: Callable[[str], None] | None, every: float = 2.0) -> None:
        self.resources = multiprocessing.Value("q", 0)
        self.patients = multiprocessing.Value("q", 0)
        self._report, self._every = report, every
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def line(self) -> str:
        seconds = max(time.monotonic() - self._started, 1e-9)
        resources, patients = self.resources.value, self.patients.value
        return (f"{resources:,} resources read ({resources / seconds:,.0f}/s), "
                f"{patients:,} patients audited ({patients / seconds:,.0f}/s)")

    def _run(self) -> None:
        assert self._report is not None  # the thread runs only when there is someone to report to
        while not self._stop.wait(self._every):
            self._report(self.line())

    def __enter__(self) -> Progress:
        if self._report:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._report:
            self._thread.join()
            self._report(self.line())


@dataclass(frozen=True)
class _Job:
    context: AuditContext
    work: Path
    partitions: int
    audit: PatientAudit


_job: _Job | None = None
_progress: Progress | None = None


def _start_worker(job: _Job, progress: Progress) -> None:
    global _job, _progress
    _job, _progress = job, progress


def _worker() -> tuple[_Job, Progress]:
    """This worker's job and progress counters (set when the pool started it)."""
    assert _job is not None and _progress is not None
    return _job, _progress


def _read(task: tuple[int, Path]) -> ReadTotals:
    """Read one file into the partition files (each worker writes its own, named after the file)."""
    index, path = task
    job, progress = _worker()
    totals = ReadTotals()
    outputs: dict[int, BinaryIO] = {}
    medications = (job.work / f"medications-{index}.ndjson").open("wb")
    seen = 0
    try:
        for patient, line in read_file(path, job.context.knowledge, totals):
            if patient == SHARED:
                medications.write(line + b"\n")
                continue
            partition = partition_of(patient, job.partitions)
            if partition not in outputs:
                outputs[partition] = (job.work / f"part-{partition}" / f"{index}.ndjson").open("wb")
            outputs[partition].write(patient.encode() + b"\t" + line + b"\n")
            if totals.lines - seen >= 10_000:
                with progress.resources.get_lock():
                    progress.resources.value += totals.lines - seen
                seen = totals.lines
    finally:
        medications.close()
        for output in outputs.values():
            output.close()
    with progress.resources.get_lock():
        progress.resources.value += totals.lines - seen
    return totals


def _medications(work: Path) -> dict[str, bytes]:
    found = {}
    for path in sorted(work.glob("medications-*.ndjson")):
        for line in path.read_bytes().splitlines():
            resource = orjson.loads(line)
            if isinstance(resource.get("id"), str):
                found[resource["id"]] = line
    return found


_medication_lines: dict[str, bytes] = {}


def _start_auditor(job: _Job, progress: Progress) -> None:
    global _medication_lines
    _start_worker(job, progress)
    _medication_lines = _medications(job.work)


def _audit(partition: int) -> Path:
    """Audit one partition: its rows, sorted, in a file."""
    job, progress = _worker()
    by_patient: dict[str, list[bytes]] = defaultdict(list)
    for path in sorted((job.work / f"part-{partition}").glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            key, _, resource = line.partition(b"\t")
            by_patient[key.decode()].append(resource)
    rows: list[BulkRow] = []
    for patient in sorted(by_patient):
        rows += job.audit(patient, by_patient.pop(patient), _medication_lines, job.context)
        with progress.patients.get_lock():
            progress.patients.value += 1
    rows.sort(key=row_order)
    result = job.work / f"rows-{partition}.ndjson"
    result.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return result


def _rows(paths: list[Path]) -> Iterator[BulkRow]:
    def read(path: Path) -> Iterator[BulkRow]:
        with path.open("rb") as lines:
            for line in lines:
                yield BulkRow.from_dict(orjson.loads(line))

    return heapq.merge(*(read(path) for path in paths), key=row_order)


def run_local(files: list[Path], context: AuditContext, add_row: Callable[[BulkRow], None], workers: int | None = None,
              report: Callable[[str], None] | None = None, partitions: int | None = None,
              audit: PatientAudit = audit_patient) -> tuple[ReadTotals, int]:
    """Audit the export's files; each row, in order, to `add_row`. Returns the reading totals and the
    number of patients. (`audit`: the per-patient function; the benchmark's floor passes one that
    evaluates nothing.)"""
    workers = workers or os.cpu_count() or 1
    partitions = partitions or partition_count(files, workers)
    totals = ReadTotals()
    fork = multiprocessing.get_context("fork")  # workers share the loaded knowledge, copy-on-write
    with tempfile.TemporaryDirectory(prefix="cds-spine-bulk-") as work_dir, Progress(report) as progress:
        work = Path(work_dir)
        for partition in range(partitions):
            (work / f"part-{partition}").mkdir()
        job = _Job(context, work, partitions, audit)
        with fork.Pool(workers, _start_worker, (job, progress)) as pool:
            for found in pool.imap_unordered(_read, list(enumerate(files))):
                totals.merge(found)
        with fork.Pool(workers, _start_auditor, (job, progress)) as pool:
            results = pool.map(_audit, range(partitions))
        for row in _rows(results):
            add_row(row)
        patients = progress.patients.value
    return totals, patients
