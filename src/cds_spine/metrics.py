"""Prometheus metrics at /metrics, correct with several worker processes.

`cds-spine serve --workers N` (N > 1) gives its workers one fresh directory in PROMETHEUS_MULTIPROC_DIR
before it starts them, so each worker writes its values there (prometheus-client's multiprocess mode)
and /metrics, answered by any worker, sums them all. A single process keeps them in memory.
Labels are bounded: endpoints, statuses, indicators, decisions and one-word reasons, never free text.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
UNPLACED_LABELS = 50
log = logging.getLogger(__name__)

REQUESTS = Counter("cds_spine_requests_total", "HTTP requests answered, by endpoint and status", ["endpoint", "status"])
LATENCY = Histogram("cds_spine_request_seconds", "Time to answer an HTTP request, by endpoint", ["endpoint"],
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
"""Per endpoint, so per hook (one service per hook); 0.5 s, 5 s and 10 s are the lines Da Vinci CRD measures
services by (90 % of calls within 5 s)."""
CARDS = Counter("cds_spine_cards_total", "Cards returned, by indicator", ["indicator"])
DECISIONS = Counter("cds_spine_decisions_total", "Orders assessed, by decision on conservative therapy", ["decision"])
FHIR_REQUESTS = Counter("cds_spine_fhir_requests_total", "Requests to the EHR's FHIR server (fallback), by outcome",
                        ["outcome"])
FHIR_LATENCY = Histogram("cds_spine_fhir_request_seconds", "Time of one request to the EHR's FHIR server")
DATA_UNAVAILABLE = Counter("cds_spine_data_unavailable_total", "412 answers (data not obtainable), by reason",
                           ["reason"])
AUTH_FAILURES = Counter("cds_spine_auth_failures_total", "Refused client JWTs, by the check that failed", ["reason"])
UNPLACED_CODE_SYSTEMS = Counter(
    "cds_spine_unplaced_code_systems_total",
    "Codes in patient records (diagnoses, procedures, medications, orders) whose code system the service could "
    "not place (neither standard, nor a mapped local system, nor known as unread), by system "
    f"(the first {UNPLACED_LABELS} systems a process meets; then 'other')", ["system"])
AUDIT_WRITE = Histogram("cds_spine_audit_write_seconds", "Time to commit a record to the audit store", ["record"])


class UnplacedCodeSystems:
    """Told each code system the record reader could not place: counts it (a bounded label) and logs each
    system once per process, with how to map it."""

    LABEL_LENGTH = 200

    def __init__(self) -> None:
        self._labelled: set[str] = set()

    def __call__(self, system: str) -> None:
        label = system[:self.LABEL_LENGTH]
        if label not in self._labelled:
            if len(self._labelled) >= UNPLACED_LABELS:
                label = "other"
            else:
                self._labelled.add(label)
                log.warning("met codes under the code system %r, which is neither a standard system nor a mapped "
                            "local one: they are not read. Map it to a standard system in the file "
                            "CDS_SPINE_LOCAL_CODE_SYSTEMS names, or list it under not_read (docs/deploy.md, "
                            "\"Local code systems\")", label)
        UNPLACED_CODE_SYSTEMS.labels(label).inc()


def endpoint_of(path: str) -> str:
    """A bounded label for a request path: the CDS service id, or the kind of endpoint."""
    parts = path.strip("/").split("/")
    if parts[0] == "cds-services":
        if len(parts) == 1:
            return "discovery"
        return f"{parts[1]}/feedback" if len(parts) > 2 else parts[1]
    return parts[0] if parts[0] in ("audit", "dashboard", "app", "healthz", "readyz", "metrics") else "other"


def prepare_multiprocess_dir() -> None:
    """Before starting several workers: a fresh directory for their values (a set one is emptied)."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if folder:
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        import tempfile

        os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="cds-spine-metrics-")


def exposition() -> tuple[bytes, str]:
    """The Prometheus text format: every worker's values when they share a directory, else this process's."""
    if values.ValueClass is values.MutexValue:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # registers itself
    return generate_latest(registry), CONTENT_TYPE_LATEST
