"""Real HTTP servers for tests: the service under uvicorn, and a scriptable FHIR server that can
misbehave at the socket level (hang, trickle, reset), each in a thread on a free loopback port."""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from cli import PATIENCE


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def served(app, sock: socket.socket | None = None, **config) -> Iterator[str]:
    """The ASGI app under uvicorn (lifespan on), on `sock` (default: a free port); yields its base URL."""
    sock = sock or free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@dataclass
class Exchange:
    """One request the FHIR server received: its request line and headers (lower-case names), and the
    connection's reader (to wait for the client to go away)."""

    method: str
    target: str
    headers: dict[str, str]
    reader: asyncio.StreamReader = field(repr=False, compare=False)


Handler = Callable[[Exchange, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """An HTTP/1.1 server whose answers are coroutines writing raw bytes, so a test can make it hang,
    trickle, reset or lie. Records every request and counts connections still open."""

    handler: Handler
    base: str = ""
    received: list[Exchange] = field(default_factory=list)
    open_connections: int = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {name.strip().lower(): value.strip()
                           for name, _, value in (line.partition(":") for line in lines[1:] if line)}
                exchange = Exchange(method, target, headers, reader)
                self.received.append(exchange)
                await self.handler(exchange, writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()


@contextmanager
def raw_server(handler: Handler) -> Iterator[RawServer]:
    """A RawServer on a free port, in its own event loop thread; `.base` is its URL."""
    raw = RawServer(handler)
    loop = asyncio.new_event_loop()
    sock = free_socket()
    started = threading.Event()
    server_holder: list[asyncio.Server] = []

    async def start() -> None:
        server_holder.append(await asyncio.start_server(raw._serve, sock=sock))
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    started.wait(10)
    raw.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield raw
    finally:
        async def stop() -> None:
            server_holder[0].close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def response_bytes(status: int, body: bytes, content_type: str = "application/fhir+json",
                   extra: str = "") -> bytes:
    reason = {200: "OK", 302: "Found", 401: "Unauthorized", 500: "Internal Server Error",
              503: "Service Unavailable"}.get(status, "Status")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}\r\n").encode() + body
