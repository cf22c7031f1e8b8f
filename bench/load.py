"""`make load`: concurrent clients against `cds-spine serve --workers N`, then the audit is checked.

Each client loops for the duration: an order-sign call (a 100-resource patient, a fresh hookInstance),
and for every third card it gets, feedback on that card. Afterwards, in the audit store: every call
answered 200 has exactly one record, with one card row per card returned, and every feedback
answered 200 was stored. With --crash, the server (all its processes) is killed with SIGKILL in the
middle of the load, restarted, and the same checks run over every acknowledged call.

    python -m bench.load --database sqlite --clients 16 --seconds 30 --workers 2 [--crash]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from sqlalchemy import func, select

from bench.patients import order_sign_request
from cds_spine.audit import tables
from cds_spine.audit.db import open_engine

SERVICE = "/cds-services/spine-pathway-order-sign"
PATIENTS = 1000
"""Calls spread over this many patients (one patient's record, under as many ids), as in a clinic."""
FEEDBACK_EVERY = 3


@dataclass
class Load:
    """What the clients saw: acknowledged calls and feedback, latencies, errors by kind."""

    calls: dict[str, int] = field(default_factory=dict)
    """hookInstance -> number of cards, for every call answered 200."""
    feedback: list[str] = field(default_factory=list)
    """Card uuids whose feedback was answered 200."""
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def share_within(self, ms: float) -> float:
        """The share of answered calls that took at most `ms` milliseconds."""
        return sum(latency <= ms for latency in self.latencies_ms) / max(len(self.latencies_ms), 1)

    def summary(self) -> str:
        ordered = sorted(self.latencies_ms) or [0.0]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (f"{len(self.calls)} calls answered 200 in {self.seconds:.1f} s "
                f"({len(self.calls) / max(self.seconds, 1e-9):.1f}/s), {len(self.feedback)} feedback, "
                f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, "
                f"{self.share_within(500):.1%} within 500 ms (Da Vinci CRD's line), "
                f"errors {sum(self.errors.values())} {self.errors or ''}".rstrip())


class Server:
    """`cds-spine serve` in its own process group, so that a crash kills the parent and every worker."""

    def __init__(self, database_url: str, workers: int, port: int, log: Path) -> None:
        self.args = [sys.executable, "-m", "cds_spine.cli", "serve", "--port", str(port), "--workers", str(workers)]
        self.env = {**os.environ, "CDS_SPINE_DATABASE_URL": database_url, "CDS_SPINE_HOST": "127.0.0.1"}
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"cds-spine serve did not start; see {self.log}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown handler runs."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


async def _client(http: httpx.AsyncClient, body: dict, until: float, load: Load) -> None:
    cards_seen = 0
    while time.monotonic() < until:
        hook_instance = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            patient = {**body["context"], "patientId": f"load-{hash(hook_instance) % PATIENTS}"}
            response = await http.post(SERVICE, content=orjson.dumps({**body, "hookInstance": hook_instance,
                                                                      "context": patient}),
                                       headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            load.error(type(exc).__name__)
            await asyncio.sleep(0.05)  # the server is down (a crash): try again shortly
            continue
        load.latencies_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            load.error(f"HTTP {response.status_code}")
            continue
        cards = response.json()["cards"]
        load.calls[hook_instance] = len(cards)
        for card in cards:
            cards_seen += 1
            if cards_seen % FEEDBACK_EVERY:
                continue
            item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:00:00Z",
                    "overrideReason": {"userComment": "load test"}}
            try:
                answer = await http.post(f"{SERVICE}/feedback", json={"feedback": [item]})
            except httpx.HTTPError as exc:
                load.error(f"feedback {type(exc).__name__}")
                continue
            if answer.status_code == 200:
                load.feedback.append(card["uuid"])
            else:
                load.error(f"feedback HTTP {answer.status_code}")


async def drive(base: str, clients: int, seconds: float, load: Load | None = None) -> Load:
    """`clients` concurrent clients for `seconds`; each call carries a 100-resource patient."""
    load = load or Load()
    body = order_sign_request(100)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(_client(http, body, started + seconds, load) for _ in range(clients)))
    load.seconds += time.monotonic() - started
    return load


def audit_problems(database_url: str, load: Load) -> list[str]:
    """Every acknowledged call recorded once with its cards, every acknowledged feedback stored, and no
    row without its call."""
    engine = open_engine(database_url)
    problems = []
    with engine.connect() as connection:
        recorded: dict[str, list[int]] = {}
        rows = connection.execute(
            select(tables.calls.c.hook_instance, func.count(tables.cards.c.uuid))
            .select_from(tables.calls.outerjoin(tables.cards, tables.cards.c.call_id == tables.calls.c.id))
            .where(tables.calls.c.status == 200).group_by(tables.calls.c.id, tables.calls.c.hook_instance))
        for hook_instance, cards in rows:
            recorded.setdefault(hook_instance, []).append(cards)
        for hook_instance, cards in load.calls.items():
            found = recorded.get(hook_instance, [])
            if found != [cards]:
                problems.append(f"call {hook_instance}: answered 200 with {cards} cards, audit has {found}")
        stored = set(connection.scalars(select(tables.feedback.c.card_uuid)))
        problems += [f"feedback on card {card} answered 200 but not stored" for card in load.feedback
                     if card not in stored]
        orphans = connection.scalar(select(func.count()).select_from(tables.cards).where(
            tables.cards.c.call_id.not_in(select(tables.calls.c.id))))
        if orphans:
            problems.append(f"{orphans} card rows without their call")
    engine.dispose()
    return problems


def run(database_url: str, clients: int, seconds: float, workers: int, crash: bool, log: Path) -> tuple[Load, list[str]]:
    """Start the server, drive it (killing it with SIGKILL halfway and restarting it, with `crash`),
    stop it, and check the audit."""
    from bench.run import free_port

    server = Server(database_url, workers, free_port(), log)
    server.start()
    try:
        if crash:
            load = Load()

            async def crash_midway() -> None:
                running = asyncio.create_task(drive(server.base, clients, seconds, load))
                await asyncio.sleep(seconds / 2)
                await asyncio.to_thread(server.kill)
                await asyncio.to_thread(server.start)
                await running

            asyncio.run(crash_midway())
        else:
            load = asyncio.run(drive(server.base, clients, seconds))
    finally:
        server.stop()
    return load, audit_problems(database_url, load)


@contextmanager
def scratch_store(database: str, folder: str) -> Iterator[str]:
    """A fresh store: a SQLite file in `folder`, or a new schema in the PostgreSQL database, dropped after."""
    if database == "sqlite":
        yield f"sqlite:///{folder}/audit.db"
        return
    import psycopg

    schema = f"load_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{database}{'&' if '?' in database else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (a temporary file) or a PostgreSQL URL (postgresql://...)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--crash", action="store_true", help="kill -9 the server halfway and restart it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, scratch_store(args.database, folder) as url:
        log = Path(folder) / "server.log"
        load, problems = run(url, args.clients, args.seconds, args.workers, args.crash, log)
        store = "SQLite" if args.database == "sqlite" else "PostgreSQL"
        print(f"{store}, {args.workers} workers, {args.clients} clients{', kill -9 halfway' if args.crash else ''}: "
              f"{load.summary()}")
        print("audit: every acknowledged call and feedback recorded" if not problems else
              "audit PROBLEMS:\n  " + "\n  ".join(problems[:20]))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
