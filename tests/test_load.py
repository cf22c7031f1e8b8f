"""`make load` in bounded form: several workers under concurrent clients, on SQLite and PostgreSQL,
then the audit is checked call by call; and the same through a kill -9 of every server process."""
from __future__ import annotations

import re
import sys

from cli import ROOT

sys.path.insert(0, str(ROOT))
from bench.load import run  # noqa: E402

CALL_LINE = re.compile(r"\[(\d+)\] \[\w+\] service=spine-pathway-order-sign hookInstance=(\S+) .* status=200 ")


def test_two_workers_under_load_record_every_call_and_feedback_and_log_each_call(database_url, tmp_path):
    log = tmp_path / "server.log"
    load, problems = run(database_url, clients=6, seconds=3, workers=2, crash=False, log=log)
    assert not load.errors, load.errors
    assert len(load.calls) > 20 and load.feedback
    assert problems == []
    text = log.read_text()
    logged = CALL_LINE.findall(text)
    assert sorted(hook_instance for _, hook_instance in logged) == sorted(load.calls)
    workers = set(re.findall(r"Started server process \[(\d+)\]", text))
    assert len(workers) == 2
    assert {pid for pid, _ in logged} <= workers, "calls are answered and logged in the worker processes"


def test_kill_9_during_load_loses_no_acknowledged_call(database_url, tmp_path):
    load, problems = run(database_url, clients=6, seconds=6, workers=2, crash=True, log=tmp_path / "server.log")
    assert len(load.calls) > 20
    assert any("Connect" in kind for kind in load.errors), "the server was down for a while"
    assert problems == []
