"""`make bench`: the service against its floor and a naive baseline, over real HTTP, by patient size.

Starts bench/server.py (the real service, uvicorn, one worker, audit in SQLite as `make run`) and
drives it from this process. For each patient size it measures, against the same payloads:
latency p50/p95/p99 (sequential calls), throughput at a fixed concurrency, and the server's peak
memory (RSS), for the service, the floor (receive + decode JSON) and the naive baseline (every
resource validated with fhir.resources first). Then the FHIR fallback with a local server adding
100 ms per query, and the audit write's share. Writes bench/results.md and bench/latency.png.
"""
from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from bench.patients import order_sign_request
from bench.results import marked_sections

HERE = Path(__file__).parent
SIZES = (10, 100, 1000, 5000)
CONCURRENCY = 4
ENDPOINTS = {"floor": "/bench/floor", "lazy-parse": "/bench/parse",
             "service": "/cds-services/spine-pathway-order-sign", "naive": "/bench/naive"}
PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], port: int, cwd: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", *args, "--port", str(port)], cwd=cwd,
                               env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{args[0]} did not start")


class PeakMemory:
    """Samples a process's resident memory every 5 ms; `peak()` since the last reset, in MiB."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self._peak = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _rss_kib(self) -> int:
        for line in self.path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._rss_kib())

    def reset(self) -> None:
        self._peak = self._rss_kib()

    def peak(self) -> float:
        return self._peak / 1024

    def stop(self) -> None:
        self._stop.set()


class Payload:
    """One request body; each call gets a fresh hookInstance (the service records every call)."""

    def __init__(self, request: dict) -> None:
        request = {**request, "hookInstance": PLACEHOLDER}
        self.body = orjson.dumps(request)

    def fresh(self) -> bytes:
        return self.body.replace(PLACEHOLDER.encode(), str(uuid.uuid4()).encode(), 1)


@dataclass
class Measurement:
    size: int
    endpoint: str
    p50: float
    p95: float
    p99: float
    throughput: float
    peak_mib: float
    cards: int


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def post(client: httpx.Client, url: str, body: bytes) -> httpx.Response:
    response = client.post(url, content=body, headers={"Content-Type": "application/json"})
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
    return response


TURN = 10
"""Calls an endpoint makes in a row before the next takes its turn."""


def latencies(base: str, endpoints: list[str], payload: Payload, calls: int) -> dict[str, list[float]]:
    """Sequential calls, the endpoints taking turns (TURN calls each), so that each is measured in the same minutes
    of a machine whose load drifts (a ratio of two runs minutes apart says more of the machine than of the
    service); in turns rather than call by call, so that a call rarely follows another endpoint's (at 5,000
    resources the floor's 100 MB of Python objects, freed, slowed the call after it)."""
    measured: dict[str, list[float]] = {endpoint: [] for endpoint in endpoints}
    with httpx.Client(timeout=120) as client:
        for endpoint in endpoints:
            for _ in range(3):
                post(client, base + ENDPOINTS[endpoint], payload.fresh())
        for turn in range(0, calls, TURN):
            for endpoint in [endpoint for endpoint in endpoints for _ in range(min(TURN, calls - turn))]:
                body = payload.fresh()
                started = time.perf_counter()
                post(client, base + ENDPOINTS[endpoint], body)
                measured[endpoint].append((time.perf_counter() - started) * 1000)
    return measured


def measure(base: str, endpoint: str, payload: Payload, size: int, latency: list[float],
            memory: PeakMemory) -> Measurement:
    """The endpoint's latency (measured beside the others), then its throughput and the server's peak memory."""
    url = base + ENDPOINTS[endpoint]
    with httpx.Client(timeout=120) as client:
        memory.reset()
        cards = len(post(client, url, payload.fresh()).json()["cards"])

    def worker(count: int) -> None:
        with httpx.Client(timeout=120) as client:
            for _ in range(count):
                post(client, url, payload.fresh())

    per_worker = max(2, len(latency) // CONCURRENCY)
    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(worker, [per_worker] * CONCURRENCY))
    throughput = per_worker * CONCURRENCY / (time.perf_counter() - started)
    return Measurement(size, endpoint, statistics.median(latency), percentile(latency, 0.95),
                       percentile(latency, 0.99), throughput, memory.peak(), cards)


def calls_for(size: int, endpoint: str, quick: bool) -> int:
    calls = 200 if size <= 100 else 60 if size <= 1000 else 25
    if endpoint == "naive":
        calls = max(8, calls // 4)
    return max(5, calls // 5) if quick else calls


def fallback(base: str, workdir: Path, size: int, delay: float) -> dict:
    """The same patient without prefetch: five searches against a FHIR server that adds `delay` each."""
    port = free_port()
    process = start(["bench.slow_fhir", "--delay", str(delay), "--size", str(size)], port, workdir)
    try:
        request = order_sign_request(size)
        request.pop("prefetch")
        request["fhirServer"] = f"http://127.0.0.1:{port}/fhir"
        request["fhirAuthorization"] = {"access_token": "bench", "token_type": "Bearer", "expires_in": 300,
                                        "scope": "user/*.read", "subject": "bench"}
        payload = Payload(request)
        url = base + ENDPOINTS["service"]
        latencies = []
        with httpx.Client(timeout=120) as client:
            for i in range(23):
                started = time.perf_counter()
                post(client, url, payload.fresh())
                if i >= 3:
                    latencies.append((time.perf_counter() - started) * 1000)
        return {"queries": 5, "delay_ms": delay * 1000, "p50": statistics.median(latencies),
                "max": max(latencies)}
    finally:
        process.terminate()
        process.wait(timeout=10)


MEMORY_CHECKPOINTS = (500, 5000)
MEMORY_PATIENTS = 50
POSTGRES = os.environ.get("CDS_SPINE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
"""Where the memory row's PostgreSQL run makes a schema of its own (and drops it afterwards)."""


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1000


def memory_over_calls(database_url: str, workdir: Path) -> dict[int, float]:
    """The server's RSS (MB) at each checkpoint of a run of order-sign calls (a 10-resource patient with a card,
    over MEMORY_PATIENTS patient ids, so the override memory is read; CONCURRENCY at a time), on a fresh store."""
    port = free_port()
    server = start(["bench.server", "--database-url", database_url], port, workdir)
    body = orjson.dumps(order_sign_request(10))
    payloads = [Payload(orjson.loads(body.replace(b"bench-10", f"bench-10-{n}".encode())))
                for n in range(MEMORY_PATIENTS)]
    url = f"http://127.0.0.1:{port}{ENDPOINTS['service']}"

    def worker(start_at: int, count: int) -> None:
        with httpx.Client(timeout=120) as client:
            for n in range(start_at, start_at + count):
                post(client, url, payloads[n % MEMORY_PATIENTS].fresh())

    found, done = {}, 0
    try:
        for checkpoint in MEMORY_CHECKPOINTS:
            share = (checkpoint - done) // CONCURRENCY
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                list(pool.map(worker, [done + i * share for i in range(CONCURRENCY)], [share] * CONCURRENCY))
            done += share * CONCURRENCY
            found[checkpoint] = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return found


@contextmanager
def postgres_store() -> Iterator[str | None]:
    """A fresh schema in the bench's PostgreSQL, dropped afterwards; None when it cannot be reached."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError:
        yield None
        return
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def memory_rows(workdir: Path) -> dict[str, dict[int, float] | None]:
    """RSS at each checkpoint on SQLite (as `make run`) and on PostgreSQL (production's store), or None."""
    rows: dict[str, dict[int, float] | None] = {
        "SQLite": memory_over_calls(f"sqlite:///{workdir / 'memory.db'}", workdir)}
    with postgres_store() as url:
        rows["PostgreSQL"] = memory_over_calls(url, workdir) if url else None
    return rows


POSTGRES_SIZES = (10, 100, 1000)


def postgres_latencies(workdir: Path, quick: bool) -> dict[int, tuple[float, float]] | None:
    """(floor p50, service p50) by patient size on a server whose audit store is PostgreSQL (production's), the two
    taking turns as in the main table; None when the bench's PostgreSQL cannot be reached."""
    with postgres_store() as url:
        if url is None:
            return None
        port = free_port()
        server = start(["bench.server", "--database-url", url], port, workdir)
        try:
            found = {}
            for size in POSTGRES_SIZES:
                measured = latencies(f"http://127.0.0.1:{port}", ["floor", "service"], Payload(order_sign_request(size)),
                                     calls_for(size, "service", quick))
                found[size] = (statistics.median(measured["floor"]), statistics.median(measured["service"]))
            return found
        finally:
            server.terminate()
            server.wait(timeout=10)


ORDER_COUNTS = (10, 100, 1000, 5000)


def draft_order_scaling(database_url: str) -> dict[int, float]:
    """Seconds for one order-sign call with n ESI orders on a 100-resource record, in process (the draft-order
    bound raised for the measurement): the work must grow with the orders, not orders times record."""
    from fastapi.testclient import TestClient

    from cds_spine.app import create_app
    from cds_spine.settings import Settings

    base = order_sign_request(100)
    [entry] = base["context"]["draftOrders"]["entry"]
    seconds = {}
    with TestClient(create_app(Settings(database_url=database_url, max_draft_orders=max(ORDER_COUNTS)))) as client:
        for count in ORDER_COUNTS:
            orders = [{"resource": {**entry["resource"], "id": f"esi-{i}"}} for i in range(count)]
            body = orjson.dumps({**base, "context": {**base["context"], "draftOrders": {
                "resourceType": "Bundle", "type": "collection", "entry": orders}}})
            started = time.perf_counter()
            response = client.post("/cds-services/spine-pathway-order-sign", content=body,
                                   headers={"Content-Type": "application/json"})
            seconds[count] = time.perf_counter() - started
            assert response.status_code == 200 and len(response.json()["cards"]) == 1  # the orders share one card
    return seconds


def audit_share(database_url: str, size: int, service_p50: float) -> dict:
    """The audit write alone, with the record of a real call on this patient, timed in this process."""
    from cds_spine.audit.db import migrate, open_engine
    from cds_spine.audit.store import CallRecord, CardRecord, SqlAuditStore
    from cds_spine.fhir.draft_orders import read_draft_orders
    from cds_spine.fhir.record import build_record
    from cds_spine.fhir.relevance import relevance_filter
    from cds_spine.pathway import assess, classify_all, load_knowledge
    from cds_spine.settings import Settings

    knowledge = load_knowledge(Settings().knowledge_dir())
    request = order_sign_request(size)
    resources = [entry["resource"] for value in request["prefetch"].values() if value["resourceType"] == "Bundle"
                 for entry in value["entry"]]
    record = build_record(filter(relevance_filter(knowledge), resources), knowledge)
    drafts = (entry["resource"] for entry in request["context"]["draftOrders"]["entry"])
    orders = classify_all(read_draft_orders(drafts), knowledge)
    [assessment] = assess(orders, record, knowledge, datetime.now(UTC))
    engine = open_engine(database_url)
    migrate(engine)
    store = SqlAuditStore(engine)
    timings = []
    for _ in range(100):
        call = CallRecord(datetime.now(UTC), "spine-pathway-order-sign", "order-sign", str(uuid.uuid4()),
                          "Practitioner/bench", f"bench-{size}", None, 200, knowledge.version, 1.0, True, (),
                          ((assessment, CardRecord(str(uuid.uuid4()), "warning", "s", (str(uuid.uuid4()),))),))
        started = time.perf_counter()
        store.record_call(call)
        timings.append((time.perf_counter() - started) * 1000)
    engine.dispose()
    mean = statistics.mean(timings)
    return {"mean_ms": mean, "share": mean / service_p50}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
    return (f"{os.cpu_count()} cores ({cpu}), {memory_kib / 1024 / 1024:.0f} GiB, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def plot(results: list[Measurement], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=110)
    for endpoint, style in (("floor", "o--"), ("lazy-parse", "x-."), ("service", "s-"), ("naive", "^:")):
        points = [(m.size, m.p50) for m in results if m.endpoint == endpoint]
        axis.plot([p[0] for p in points], [p[1] for p in points], style, label=endpoint)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("resources in the patient's prefetch")
    axis.set_ylabel("p50 latency (ms)")
    axis.set_title("cds-spine order-sign latency by patient size")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)


def report(results: list[Measurement], fallback_result: dict, audit: dict, orders: dict[int, float],
           memory: dict[str, dict[int, float] | None], postgres: dict[int, tuple[float, float]] | None,
           quick: bool) -> str:
    by = {(m.size, m.endpoint): m for m in results}
    lines = [
        "# Benchmark: cds-spine against its floor",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        f"{'Quick run (fewer calls). ' if quick else ''}Produced by `make bench` (bench/run.py); the service runs as"
        " `make run` does (uvicorn, one worker, audit in SQLite, WAL) and is driven over HTTP from another process.",
        "",
        "Each call is an order-sign on a lumbar ESI with the patient's whole record prefetched under every key"
        " discovery asks for (the patient, the user, eight searchset Bundles; about 5 % of resources relevant: spine"
        " diagnoses, PT visits, NSAIDs, ESIs, the report of a lumbar MRI; the rest unrelated"
        f" care). Latency: sequential calls, the floor, lazy-parse and the service taking turns of {TURN} calls (so that"
        " each ratio compares the same minutes of the machine); throughput: "
        f"{CONCURRENCY} concurrent clients; peak memory: the server's RSS while serving that size.",
        "",
        "- floor: receive the body and decode the JSON with orjson (the fastest full decoder), answer"
        " `{\"cards\": []}` (same process);",
        "- lazy-parse: receive the body and parse it as the service does (simdjson), reading nothing: how much"
        " of the floor is making Python objects;",
        "- service: the real service call: parse lazily, keep the relevant resources in one pass (only those"
        " become Python objects), validate them, assess, render, commit the audit record, answer;",
        "- naive: every resource decoded and validated with fhir.resources R4B, then evaluated (no audit).",
        "",
        "The service can be cheaper than the floor: the floor builds Python objects for the whole prefetch, the"
        " service only for the resources the rules read.",
        "",
        "| resources | body | endpoint | p50 ms | p95 ms | p99 ms | calls/s | peak RSS MiB | cards |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for size in SIZES:
        body_kib = len(Payload(order_sign_request(size)).body) / 1024
        for endpoint in ENDPOINTS:
            m = by[(size, endpoint)]
            lines.append(f"| {size} | {body_kib:,.0f} KiB | {endpoint} | {m.p50:.1f} | {m.p95:.1f} | {m.p99:.1f} "
                         f"| {m.throughput:.1f} | {m.peak_mib:.0f} | {m.cards} |")
    lines += ["", "## Ratios (p50)", "",
              "| resources | service / floor | naive / floor | service µs per resource | floor µs per resource |",
              "|---:|---:|---:|---:|---:|"]
    for size in SIZES:
        service, floor, naive = by[(size, "service")], by[(size, "floor")], by[(size, "naive")]
        lines.append(f"| {size} | {service.p50 / floor.p50:.2f} | {naive.p50 / floor.p50:.2f} "
                     f"| {service.p50 * 1000 / size:.0f} | {floor.p50 * 1000 / size:.0f} |")
    lines += ["", "Per resource, the service's cost is nearly flat from 1,000 to 5,000 resources (linear growth);"
              " the small rise, shared by the floor, is memory: an 8 MB body and its objects no longer fit in the"
              " CPU caches. Below 1,000 resources, fixed per-call costs dominate (the audit commit, about 1 ms)."]
    lines += ["", "## On PostgreSQL (production's store)", ""]
    lines += ["Not measured: no PostgreSQL at CDS_SPINE_BENCH_POSTGRES."] if postgres is None else [
        "The same calls against a server whose audit store is PostgreSQL on this machine (its defaults: fsync and"
        " synchronous_commit on), the floor in the same process, taking turns as above. Each call's audit work is"
        " round trips there (the override memory's probe; the call, its order and its card, committed), where"
        " SQLite works in the process:",
        "",
        "| resources | floor p50 ms | service p50 ms | service / floor |",
        "|---:|---:|---:|---:|",
        *(f"| {size} | {floor:.1f} | {service:.1f} | {service / floor:.2f} |"
          for size, (floor, service) in postgres.items())]
    lines += [
        "",
        "## FHIR fallback",
        "",
        f"The same 1,000-resource patient without prefetch: the service runs {fallback_result['queries']} searches"
        f" against a local FHIR server that adds {fallback_result['delay_ms']:.0f} ms to each. p50"
        f" {fallback_result['p50']:.1f} ms, max {fallback_result['max']:.1f} ms, against"
        f" {by[(1000, 'service')].p50:.1f} ms with prefetch: the searches run concurrently, so the added time is"
        f" about one query ({fallback_result['delay_ms']:.0f} ms), not the sum"
        f" ({fallback_result['queries'] * fallback_result['delay_ms']:.0f} ms).",
        "",
        "## Audit write",
        "",
        f"Recording one call (call, order with findings and evidence, card) in SQLite, committed: mean"
        f" {audit['mean_ms']:.2f} ms, {audit['share'] * 100:.0f} % of the service's p50 at 1,000 resources. It does"
        " not dominate, so commits are not batched: each call is committed before its answer.",
        "",
        "## Draft orders per call",
        "",
        "One order-sign call with n ESI orders on a 100-resource record, in process (CDS_SPINE_MAX_DRAFT_ORDERS"
        " raised for the measurement; the default bound is 100):",
        "",
        "| orders | seconds | ms per order |",
        "|---:|---:|---:|",
        *(f"| {count:,} | {seconds:.2f} | {seconds / count * 1000:.2f} |" for count, seconds in orders.items()),
        "",
        "## Memory over many calls",
        "",
        f"A fresh server, {MEMORY_CHECKPOINTS[-1]:,} order-sign calls of a 10-resource patient with a card over"
        f" {MEMORY_PATIENTS} patient ids (so every call reads the override memory), {CONCURRENCY} at a time; the"
        " server's RSS after each number of calls:",
        "",
        f"| store | RSS at call {MEMORY_CHECKPOINTS[0]:,} | RSS at call {MEMORY_CHECKPOINTS[-1]:,} | growth |",
        "|---|---:|---:|---:|",
        *(f"| {store} | not measured (no PostgreSQL at CDS_SPINE_BENCH_POSTGRES) | | |" if rss is None else
          f"| {store} | {rss[MEMORY_CHECKPOINTS[0]]:.1f} MB | {rss[MEMORY_CHECKPOINTS[-1]]:.1f} MB"
          f" | {rss[MEMORY_CHECKPOINTS[-1]] - rss[MEMORY_CHECKPOINTS[0]]:+.1f} MB |" for store, rss in memory.items()),
        "",
        "![p50 latency by patient size](latency.png)",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="patient sizes to run")
    args = parser.parse_args()
    sizes = tuple(args.sizes)
    workdir = Path(tempfile.mkdtemp(prefix="cds-spine-bench-"))
    database_url = f"sqlite:///{workdir / 'cds-spine.db'}"
    port = free_port()
    server = start(["bench.server", "--database-url", database_url], port, workdir)
    memory = PeakMemory(server.pid)
    base = f"http://127.0.0.1:{port}"
    results = []
    try:
        for size in sizes:
            payload = Payload(order_sign_request(size))
            side_by_side = [endpoint for endpoint in ENDPOINTS if endpoint != "naive"]
            measured = {**latencies(base, side_by_side, payload, calls_for(size, "service", args.quick)),
                        **latencies(base, ["naive"], payload, calls_for(size, "naive", args.quick))}
            for endpoint in ENDPOINTS:
                result = measure(base, endpoint, payload, size, measured[endpoint], memory)
                results.append(result)
                print(f"{size:>5} {endpoint:<8} p50 {result.p50:8.1f} ms  p95 {result.p95:8.1f} ms  "
                      f"{result.throughput:7.1f}/s  peak {result.peak_mib:6.0f} MiB", flush=True)
        if sizes == SIZES:
            fallback_result = fallback(base, workdir, 1000, 0.1)
            print(f"fallback p50 {fallback_result['p50']:.1f} ms", flush=True)
    finally:
        memory.stop()
        server.terminate()
        server.wait(timeout=10)
    by = {(m.size, m.endpoint): m.p50 for m in results}
    for size in sizes:
        print(f"service/floor at {size}: {by[(size, 'service')] / by[(size, 'floor')]:.2f}")
    if sizes != SIZES:
        return  # a partial run writes nothing
    audit = audit_share(f"sqlite:///{workdir / 'audit-share.db'}", 1000, by[(1000, "service")])
    orders = draft_order_scaling(f"sqlite:///{workdir / 'orders.db'}")
    print("draft orders: " + ", ".join(f"{count} in {seconds:.2f} s" for count, seconds in orders.items()), flush=True)
    memory = memory_rows(workdir)
    print("memory: " + ", ".join(f"{store} {rss}" for store, rss in memory.items()), flush=True)
    postgres = postgres_latencies(workdir, args.quick)
    print(f"on PostgreSQL (floor, service): {postgres}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args.out / "latency.png")
    path = args.out / "results.md"
    path.write_text(report(results, fallback_result, audit, orders, memory, postgres, args.quick) + marked_sections(path),
                    encoding="utf-8")
    print(f"wrote {args.out / 'results.md'} and {args.out / 'latency.png'}")


if __name__ == "__main__":
    main()
