"""The bulk audit (compare-knowledge's two runs, through audit-bulk's run_audit) on a real Spark standalone
cluster, not only local[*]: a master and two
workers started on this machine from pyspark's own scripts (separate JVMs, executors in processes of their
own), the rows written by the executors as Parquet part files, and the same rows, summaries and changes as the
local engine. This is the Spark engine's equivalence test (local[*] runs the same code with the driver's own
executors: test_bulk checks it, through audit-bulk, on the real-shaped export)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pyspark
import pytest
from cli import PATIENCE, ROOT, run_cli
from live import free_socket

sys.path.insert(0, str(ROOT))
from bench.bulk_export import write_export  # noqa: E402
from cds_spine.settings import Settings  # noqa: E402

SPARK_CLASS = Path(pyspark.__file__).parent / "bin" / "spark-class"
PLAIN = {"CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS": "true"}
pytestmark = pytest.mark.slow  # a cluster and the CLI in processes of their own


def _port() -> int:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(master URL, master web UI URL) of a standalone cluster: one master, two workers of one core each."""
    work = tmp_path_factory.mktemp("spark")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(work), "PYSPARK_PYTHON": sys.executable}
    port, ui = _port(), _port()
    processes = [subprocess.Popen([str(SPARK_CLASS), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                   "--port", str(port), "--webui-port", str(ui)], env=env, cwd=work,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    master, web = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui}"
    try:
        for n in range(2):
            processes.append(subprocess.Popen(
                [str(SPARK_CLASS), "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1", "--cores",
                 "1", "--memory", "1g", "--webui-port", str(_port()), "--work-dir", str(work / f"worker-{n}")],
                env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                alive = [w for w in httpx.get(f"{web}/json/", timeout=2).json().get("workers", []) if w["state"] == "ALIVE"]
            except (httpx.HTTPError, ValueError):
                alive = []
            if len(alive) == 2:
                break
            if time.monotonic() > deadline:
                pytest.fail("the Spark standalone cluster did not come up with two workers")
            time.sleep(0.5)
        yield master, web
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return write_export(tmp_path_factory.mktemp("export"), 200, seed=17, today=date(2026, 6, 30), files_per_type=2)


def on_cluster(master: str) -> dict[str, str]:
    return {**PLAIN, "CDS_SPINE_SPARK_MASTER": master, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}


def test_compare_knowledge_on_the_cluster_gives_the_local_engines_runs_and_changes(cluster, generated, tmp_path):
    """One Spark application on the cluster (starting one costs 15 to 30 s here): compare-knowledge audits the
    export twice in it, through run_audit as audit-bulk does, and each run must be the local engine's, row for
    row, with its rows written by the executors as one part file per partition."""
    master, web = cluster
    baseline = Settings().knowledge_dir()
    candidate = tmp_path / "cards"
    subprocess.run(["cp", "-r", str(baseline), str(candidate)], check=True)
    pathway = candidate / "pathway.yaml"
    pathway.write_text(pathway.read_text().replace("  esi:\n    min_conservative_days: 28",
                                                   "  esi:\n    min_conservative_days: 56", 1))
    outs = {}
    for engine, settings in (("local", PLAIN), ("spark", on_cluster(master))):
        outs[engine] = tmp_path / engine
        result = run_cli("compare-knowledge", str(generated), "--baseline", str(baseline), "--candidate", str(candidate),
                         "--out", str(outs[engine]), "--since", "2023-01-01", "--until", "2026-06-30", "--engine",
                         engine, "--partitions", "4", "--quiet", **settings)
        assert result.returncode == 0, result.stderr
    assert (outs["spark"] / "changes.csv").read_text() == (outs["local"] / "changes.csv").read_text()
    local, spark = (json.loads((outs[engine] / "summary.json").read_text()) for engine in ("local", "spark"))
    assert spark == local and spark["changed"] > 0
    for run in ("baseline", "candidate"):
        on_spark, on_local = outs["spark"] / run, outs["local"] / run
        assert len(list((on_spark / "rows.parquet").glob("part-*.parquet"))) == 4  # one per partition
        assert pq.read_table(on_spark / "rows.parquet").to_pylist() == pq.read_table(on_local / "rows.parquet").to_pylist()
        assert (on_spark / "rows.csv").read_bytes() == (on_local / "rows.csv").read_bytes()
        summaries = [json.loads((out / "summary.json").read_text()) for out in (on_local, on_spark)]
        assert summaries[1]["engine"] == f"spark {master}"
        assert {k: v for k, v in summaries[0].items() if k not in ("ranAt", "seconds", "engine")} == \
            {k: v for k, v in summaries[1].items() if k not in ("ranAt", "seconds", "engine")}
    apps = httpx.get(f"{web}/json/", timeout=5).json()["completedapps"]
    assert [app["name"] for app in apps] == ["cds-spine audit-bulk"]  # both runs in one application, on the cluster
