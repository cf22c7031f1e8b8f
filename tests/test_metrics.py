"""/metrics: Prometheus text format with the service's counters, in one process and summed over two
worker processes of `cds-spine serve`."""
from __future__ import annotations

import os
import sys

import httpx
import pytest
from cli import ROOT
from metrics_text import samples, value
from support import ORDER_SELECT, ORDER_SIGN, call, hook_request

sys.path.insert(0, str(ROOT))
from bench.load import Server  # noqa: E402
from bench.run import free_port  # noqa: E402


def test_metrics_count_requests_cards_decisions_and_412s(client):
    before = client.get("/metrics").text
    assert call(client, ORDER_SIGN, hook_request("order-sign")).status_code == 200
    assert call(client, ORDER_SELECT, hook_request(omit=("procedures",))).status_code == 412
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    for name, labels in [("cds_spine_requests_total", {"endpoint": ORDER_SIGN, "status": "200"}),
                         ("cds_spine_requests_total", {"endpoint": ORDER_SELECT, "status": "412"}),
                         ("cds_spine_cards_total", {"indicator": "warning"}),
                         ("cds_spine_decisions_total", {"decision": "not-met"}),
                         ("cds_spine_data_unavailable_total", {"reason": "no-fhir-access"}),
                         ("cds_spine_audit_write_seconds_count", {"record": "call"})]:
        assert value(after, name, **labels) - value(before, name, **labels) >= 1, (name, labels)
    labels = {label for name, pairs in samples(after) if name.startswith("cds_spine") for label in pairs}
    assert {name for name, _ in labels} <= {"endpoint", "status", "indicator", "decision", "outcome", "reason",
                                            "record", "le"}
    assert "p1" not in {label_value for _, label_value in labels}


def test_each_hook_has_its_latency_histogram_with_the_lines_crd_measures_by(client):
    for service in (ORDER_SELECT, ORDER_SIGN):
        assert call(client, service, hook_request("order-select" if service == ORDER_SELECT else "order-sign"))
    text = client.get("/metrics").text
    for service in (ORDER_SELECT, ORDER_SIGN):
        for line in ("0.5", "5.0", "10.0"):
            assert value(text, "cds_spine_request_seconds_bucket", endpoint=service, le=line) >= 1, (service, line)


@pytest.mark.slow  # starts `cds-spine serve --workers 2`
def test_two_workers_report_the_sum_of_their_counts(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"stale")  # left by an earlier run: emptied at start
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        server = Server(f"sqlite:///{tmp_path / 'audit.db'}", 2, free_port(), tmp_path / "server.log")
        server.start()
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        calls = 0
        while calls < 20 or (len(writers(folder)) < 2 and calls < 300):
            # a new connection each time: the kernel hands them to either worker
            response = httpx.post(f"{server.base}/cds-services/{ORDER_SIGN}", json=hook_request("order-sign"),
                                  headers={"Connection": "close"}, timeout=30)
            assert response.status_code == 200
            calls += 1
        assert len(writers(folder)) == 2
        for _ in range(4):  # whichever worker answers, the sum is the same
            text = httpx.get(f"{server.base}/metrics", headers={"Connection": "close"}).text
            assert value(text, "cds_spine_requests_total", endpoint=ORDER_SIGN, status="200") == calls
            assert value(text, "cds_spine_cards_total", indicator="warning") == calls
    finally:
        server.stop()


def writers(folder) -> set[str]:
    """The processes that have counted something (prometheus-client writes one file per process)."""
    return {path.stem.rsplit("_", 1)[1] for path in folder.glob("counter_*.db")}
