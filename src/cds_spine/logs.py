"""One logging set-up for the service and its server (uvicorn), applied in every worker process: one
line per record, JSON or readable text (CDS_SPINE_LOG_FORMAT), each with the request id of the
request it belongs to, and one access line per request (RequestLog)."""
from __future__ import annotations

import logging
import logging.config
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import LATENCY, REQUESTS, endpoint_of
from .printable import printable
from .refusals import RefusalTally

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] [%(request_id)s] %(message)s"
ACCESS_FIELDS = ("method", "path", "status", "ms", "reason")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access_log = logging.getLogger("cds_spine.access")

_request: ContextVar[dict[str, Any] | None] = ContextVar("cds_spine_request", default=None)


def note_reason(reason: str, kind: str | None = None) -> None:
    """Why this request was refused (an OperationOutcome's diagnostics), for its access line; `kind`, a word
    (the issue type), unless a more precise one was noted (note_refusal)."""
    current = _request.get()
    if current is not None:
        current["reason"] = reason
        if kind:
            current.setdefault("refusal", kind)


def note_refusal(kind: str) -> None:
    """The refusal's reason in a word (e.g. the JWT check that failed), for the integration traffic."""
    current = _request.get()
    if current is not None:
        current["refusal"] = kind


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = _request.get()
        record.request_id = current["id"] if current else "-"
        return True


def fields(**values: Any) -> dict[str, Any]:
    """`extra` for a log call whose facts a log pipeline should get as JSON fields, not only in the message:
    `log.info("service=%s ...", ..., extra=fields(service=..., status=...))`."""
    return {"fields": values}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, process, request_id, message, and the record's fields
    (the access fields, or those given with `extra=fields(...)`)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "process": record.process,
                 "request_id": getattr(record, "request_id", "-"), "message": record.getMessage()}
        entry.update({key: getattr(record, key) for key in ACCESS_FIELDS if hasattr(record, key)})
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, one line per record: the message's control and reordering characters escaped (printable), so
    that a caller's text with CR and LF cannot write a line of its own."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return printable(super().formatMessage(record))


def logging_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """A dictConfig: every logger (cds_spine, uvicorn, the rest) writes one format to stderr, with the
    request id. uvicorn applies it in each worker it starts."""
    formatter = {"()": JsonFormatter if log_format == "json" else TextFormatter}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestIdFilter}},
        "formatters": {"line": formatter},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["request"],
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {name: {"handlers": [], "propagate": True}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }


def configure_logging(level: str, log_format: str = "text") -> None:
    logging.config.dictConfig(logging_config(level, log_format))


def ensure_logging(level: str, log_format: str = "text") -> None:
    """When the process has no logging set up (uvicorn started by hand), set ours up, so the per-call
    lines are not lost."""
    if not logging.getLogger().handlers:
        configure_logging(level, log_format)


class RequestLog:
    """Outermost middleware: the request id (a valid `X-Request-ID`, else a new one) in every log line of
    the request and in the response header, and one access line per request with its status, latency
    and, for a refusal, the reason (the path without its query string); the request metrics too."""

    def __init__(self, app: ASGIApp, cors_origins: tuple[str, ...] = ("*",), refusals: RefusalTally | None = None
                 ) -> None:
        self.app = app
        self.cors_origins = frozenset(cors_origins)
        self.refusals = refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        current: dict[str, Any] = {"id": given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex, "status": 500}
        token = _request.set(current)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                current["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", current["id"].encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._access_line(scope, headers, current, (time.perf_counter() - started) * 1000)
            _request.reset(token)

    def _count_refusal(self, scope: Scope, endpoint: str, status: int, current: dict[str, Any],
                       refused_origin: str | None) -> None:
        """A request to the CDS services that did not become a call (412s are calls: the audit has them), or
        whose answer a browser will not show (its origin is not allowed)."""
        if self.refusals is None or not scope["path"].startswith("/cds-services"):
            return
        if refused_origin:
            self.refusals.count(endpoint, status, "cors-origin")
        elif status >= 400 and status != 412:
            self.refusals.count(endpoint, status, current.get("refusal") or f"http-{status}")

    def _refused_origin(self, headers: dict[bytes, bytes]) -> str | None:
        """The request's Origin when CDS_SPINE_CORS_ORIGINS does not allow it (a browser then blocks the
        answer: a sandbox shows nothing), shortened and quoted, so the log can name it."""
        origin = headers.get(b"origin")
        if origin is None or "*" in self.cors_origins:
            return None
        text = origin.decode("latin-1")
        return None if text in self.cors_origins else repr(text[:200])

    def _access_line(self, scope: Scope, headers: dict[bytes, bytes], current: dict[str, Any], ms: float) -> None:
        status = current["status"]
        reason = current.get("reason")
        refused_origin = self._refused_origin(headers)
        if reason is None and refused_origin:
            reason = (f"CORS origin {refused_origin} is not allowed: the browser blocks the answer; add the origin "
                      f"to CDS_SPINE_CORS_ORIGINS")
        elif reason is None and scope["method"] == "OPTIONS" and status == 400 and b"origin" in headers:
            reason = "CORS preflight refused (method or header not allowed: CDS_SPINE_CORS_ORIGINS)"
        fields = {"method": scope["method"], "path": scope["path"], "status": status, "ms": round(ms, 1)}
        if reason:
            fields["reason"] = reason
        endpoint = endpoint_of(scope["path"])
        self._count_refusal(scope, endpoint, status, current, refused_origin)
        REQUESTS.labels(endpoint, str(status)).inc()
        LATENCY.labels(endpoint).observe(ms / 1000)
        level = logging.WARNING if status >= 500 else logging.INFO
        access_log.log(level, "%s %s %d %.1f ms%s", scope["method"], scope["path"], status, ms,
                       f" ({reason})" if reason else "", extra=fields)
