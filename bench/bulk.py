"""`make bench-bulk`: `cds-spine audit-bulk` on both engines against its floor, at 10,000 and 100,000 patients.

For each size it generates an export (bench/bulk_export.py) and runs, each in a fresh process so that its
peak memory is its own: the local engine, the local engine's floor (the same reading and grouping by
patient, evaluating nothing), the Spark engine (local[*]) and its floor. Patients per second per core is
patients / wall seconds / cores. Peak memory is the largest total RSS of the run's process tree, sampled
every 0.1 s (the workers; for Spark, the JVM and its Python workers). Writes the "Bulk audit" section of
bench/results.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.bulk_export import write_export
from bench.results import replace_section

HERE = Path(__file__).parent
SIZES = (10_000, 100_000)
RUNS = ("local", "local floor", "spark", "spark floor")


def evaluate_nothing(patient, lines, medications, context) -> list:
    """The floor's per-patient function: the patient's lines were read and grouped; nothing more."""
    return []


def one(export: Path, run: str) -> dict:
    """One measured run, in this process (the parent runs it as a child process)."""
    from cds_spine.bulk.audit import AuditSpec, audit_patient
    from cds_spine.bulk.export import export_files
    from cds_spine.settings import Settings

    settings = Settings()
    spec = AuditSpec.of(settings.knowledge_dir(), None, None, None, b"bench-key")
    rows: list[int] = [0]

    def add_row(row: dict) -> None:
        rows[0] += 1

    audit = evaluate_nothing if run.endswith("floor") else audit_patient
    files = export_files(export)
    started = time.perf_counter()
    if run.startswith("spark"):
        import tempfile

        from cds_spine.bulk.spark import run_spark
        with tempfile.TemporaryDirectory(prefix="cds-spine-bench-rows-") as rows_dir:
            totals, patients = run_spark(files, spec, Path(rows_dir), add_row, "local[*]", audit=audit)
    else:
        from cds_spine.bulk.local import run_local
        totals, patients = run_local(files, spec.context(), add_row, audit=audit)
    seconds = time.perf_counter() - started
    return {"run": run, "seconds": seconds, "patients": patients, "resources": totals.lines, "rows": rows[0]}


def _tree_rss_kib(root: int) -> int:
    """The resident memory of a process and all its descendants (workers; the JVM and its Python workers)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        pid = int(fields["Pid"])
        children.setdefault(int(fields["PPid"]), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending += children.get(pid, [])
    return total


def measure(export: Path, run: str) -> dict:
    """One run in a child process; its peak memory is the largest sum over its process tree, sampled."""
    child = subprocess.Popen([sys.executable, "-m", "bench.bulk", "--one", run, "--export", str(export)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=HERE.parent)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss_kib(child.pid))
        time.sleep(0.1)
    output = child.stdout.read()
    if child.returncode:
        raise SystemExit(f"{run} failed (exit {child.returncode})")
    return {**json.loads(output.strip().splitlines()[-1]), "peakMiB": peak / 1024}


def report(results: list[tuple[int, float, float, list[dict]]], cores: int) -> str:
    lines = [f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {cores} cores, Python {platform.python_version()}, "
             f"{platform.system()} {platform.release()}; produced by `make bench-bulk` (bench/bulk.py).", "",
             "Exports from bench/bulk_export.py: about 40 resources per patient (Patient, Encounters, unrelated "
             "conditions, visits, drugs and referrals in EHR shape), 30 % of patients with a spine story "
             "(diagnosis, conservative care in several patterns, ESIs, surgeries, red flags), gzip NDJSON, one "
             "file per type. Each run is `run_local` or `run_spark` (local[*]) in a process of its own; a floor "
             "reads and groups the same export by patient and evaluates nothing.", "",
             "| patients | resources | export MiB (gzip) | engine | seconds | patients/s/core | vs floor | "
             "peak RSS MiB | rows |", "|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for patients, size_mib, _, runs in results:
        floors = {run["run"].split()[0]: run["seconds"] for run in runs if run["run"].endswith("floor")}
        for run in runs:
            rate = run["patients"] / run["seconds"] / cores
            ratio = "" if run["run"].endswith("floor") else f"{run['seconds'] / floors[run['run']]:.2f}×"
            lines.append(f"| {patients:,} | {run['resources']:,} | {size_mib:,.0f} | {run['run']} | "
                         f"{run['seconds']:.1f} | {rate:,.0f} | {ratio} | {run['peakMiB']:,.0f} | {run['rows']:,} |")
    lines += ["", "Generating the exports took " + ", ".join(f"{seconds:.0f} s ({patients:,} patients)"
                                                           for patients, _, seconds, _ in results) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=RUNS)
    parser.add_argument("--export", type=Path)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.export, args.one)))
        return
    cores = os.cpu_count() or 1
    results = []
    for patients in args.sizes:
        with tempfile.TemporaryDirectory(prefix="cds-spine-bench-bulk-") as folder:
            started = time.perf_counter()
            manifest = write_export(Path(folder), patients)
            generated = time.perf_counter() - started
            size_mib = sum(p.stat().st_size for p in Path(folder).glob("*.gz")) / 2 ** 20
            runs = []
            for run in RUNS:
                runs.append(measure(manifest, run))
                print(f"{patients:,} patients, {run}: {runs[-1]['seconds']:.1f} s, {runs[-1]['peakMiB']:.0f} MiB",
                      flush=True)
            results.append((patients, size_mib, generated, runs))
    replace_section(HERE / "results.md", "Bulk audit (`cds-spine audit-bulk`)", report(results, cores))
    print(f"wrote {HERE / 'results.md'}")


if __name__ == "__main__":
    main()
