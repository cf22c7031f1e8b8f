"""Run the installed `cds-spine` console script, as an operator would."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

CDS_SPINE = str(Path(sys.executable).parent / "cds-spine")
ROOT = Path(__file__).resolve().parent.parent
VALUESET_COUNT = len(list((ROOT / "cards" / "valuesets").glob("*.json")))


PATIENCE = 900
"""Seconds a test waits for a condition (a command to finish, a server to answer) before calling it failed: a
guard against a hang, far beyond what a busy machine needs, so that load never fails a test (CI stops at 90
minutes). A test waits for the condition, never for a time."""


def clean_env(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CDS_SPINE_")}
    env.update(settings)
    return env


def run_cli(*args: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run([CDS_SPINE, *args], capture_output=True, text=True, timeout=PATIENCE, env=clean_env(**settings),
                          cwd=ROOT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answering(url: str, what: str = "the service", seconds: float = PATIENCE) -> None:
    """Wait until `url` answers at all (any status), or fail the test saying which server did not start."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.1)


@contextmanager
def serving(cwd: Path = ROOT, port: int | None = None, **settings: str) -> Iterator[str]:
    """`cds-spine serve` as a real server on `port` (default: a free one); yields its base URL once /healthz
    answers."""
    port = port or free_port()
    process = subprocess.Popen([CDS_SPINE, "serve", "--port", str(port)], env=clean_env(**settings), cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"the service did not start: {process.communicate(timeout=10)[0]}")
    try:
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=10)  # and closes the pipe
