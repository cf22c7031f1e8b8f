"""Hostile input from a client: NUL characters, tokens that cannot be a header, slow and vanishing
clients, huge sessions. Every answer is a 4xx naming the problem (never a 500 or a store failure),
and no call holds the event loop."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time

import httpx
import pytest
from cli import PATIENCE
from live import served
from sqlalchemy import func, select
from support import (
    ORDER_SELECT,
    ORDER_SIGN,
    audit_store,
    authorization,
    call,
    esi_order,
    hook_request,
    outcome_expressions,
    pt_visits,
)

from cds_spine.app import create_app
from cds_spine.audit import tables
from cds_spine.cdshooks import answers
from cds_spine.pathway import assessment
from cds_spine.settings import Settings

FEEDBACK = f"/cds-services/{ORDER_SIGN}/feedback"


def feedback_item(card: str = "8d1b5e4c-2f39-4a8f-9a55-3c1f0e6b7a21") -> dict:
    return {"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-01-01T10:05:00Z"}


def calls_stored(client) -> int:
    with audit_store(client).engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(tables.calls))


@pytest.fixture
def stored_client(make_client, store_url):
    """A client on SQLite and on PostgreSQL (which cannot store a NUL)."""
    return make_client(database_url=store_url)


@pytest.mark.parametrize("where, field", [
    (lambda r: r["context"].update({"odd\u0000key": 1}), "context"),
    (lambda r: r.update({"\u0000": 1}), "the body"),
    (lambda r: r.update(hookInstance="d1577c69\u0000"), "hookInstance"),
    (lambda r: r["context"].update(userId="Practitioner/u\u00001"), "context.userId"),
    (lambda r: r["context"]["draftOrders"]["entry"][0]["resource"].update(id="esi\u00001"),
     "context.draftOrders.entry[0].resource.id"),
    (lambda r: r["prefetch"]["conditions"]["entry"][0]["resource"]["code"].update(text="radic\u0000ulopathy"),
     "prefetch.conditions.entry[0].resource.code.text"),
])
def test_a_nul_character_anywhere_in_a_call_is_400_naming_the_field(stored_client, where, field):
    request = hook_request("order-sign")
    where(request)
    response = call(stored_client, ORDER_SIGN, request)
    assert response.status_code == 400
    [issue] = response.json()["issue"]
    assert issue["diagnostics"].startswith(f"{field}: a NUL character")
    assert outcome_expressions(response) == ([] if field == "the body" else [field])
    assert calls_stored(stored_client) == 0


@pytest.mark.parametrize("item, field", [
    ({"card\u0000": "x"}, "feedback[0]"),
    (feedback_item("card\u0000id"), "feedback[0].card"),
    ({**feedback_item(), "overrideReason": {"userComment": "a\u0000b"}}, "feedback[0].overrideReason.userComment"),
])
def test_a_nul_character_in_feedback_is_400_naming_the_field(stored_client, item, field):
    response = stored_client.post(FEEDBACK, json={"feedback": [item]})
    assert response.status_code == 400
    assert outcome_expressions(response) == [field]


def test_an_escaped_backslash_before_u0000_is_plain_text(client):
    request = hook_request("order-sign")
    request["hookInstance"] = "a\\u0000b"  # a backslash, then the six characters u0000: no NUL
    assert call(client, ORDER_SIGN, request).status_code == 200


@pytest.mark.parametrize("token", ["tökén", "two words", "line\nbreak", "tab\there"])
def test_an_access_token_that_cannot_be_a_header_is_400(client, token):
    request = hook_request(fhirServer="https://ehr.example.org/fhir", fhirAuthorization=authorization(token),
                           omit=("procedures",))
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["fhirAuthorization.access_token"]
    assert token not in response.text


@pytest.mark.parametrize("patient_id", ["p1\n", "p1 ", "p\u00e91"])
def test_a_patient_id_is_a_fhir_id_to_its_last_character(client, patient_id):
    request = hook_request()
    request["context"]["patientId"] = patient_id
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["context.patientId"]


def test_the_work_of_a_call_grows_with_its_orders_not_with_orders_times_record(client, monkeypatch):
    """100 draft orders on a record with too little therapy: the record is read once per kind of order."""
    histories = []
    monkeypatch.setattr(assessment, "conservative_history",
                        lambda *args, _real=assessment.conservative_history: histories.append(1) or _real(*args))
    orders = [esi_order(f"esi-{i}") for i in range(100)]
    request = hook_request("order-sign", orders=orders, procedures=pt_visits(20, 6))
    response = call(client, ORDER_SIGN, request)
    assert response.status_code == 200
    [card] = response.json()["cards"]  # the 100 orders share their finding: one card speaks for them all
    [replace, _] = card["suggestions"]
    assert len([a for a in replace["actions"] if a["type"] == "delete"]) == 100
    assert len(histories) == 1


def test_the_pathway_runs_off_the_event_loop(client, monkeypatch):
    threads = []
    real = answers.build_record
    monkeypatch.setattr(answers, "build_record", lambda *args: threads.append(threading.current_thread()) or real(*args))
    assert call(client, ORDER_SIGN, hook_request("order-sign")).status_code == 200
    assert threads and all(thread is not threading.main_thread() for thread in threads)


# --- slow and vanishing clients, on a real server -----------------------------------------------------

@pytest.fixture
def live(knowledge, tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'audit.db'}", body_timeout_seconds=1)
    with served(create_app(settings, knowledge)) as base:
        yield base


def raw_post_start(base: str, length: int, sent: bytes) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall((f"POST /cds-services/{ORDER_SIGN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {length}\r\n\r\n").encode() + sent)
    return sock


def read_to_close(sock: socket.socket) -> str:
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received.decode()


def test_a_trickled_body_is_cut_off_with_408_and_others_are_served(live):
    body = json.dumps(hook_request("order-sign")).encode()
    trickling = [raw_post_start(live, len(body), body[:10]) for _ in range(20)]
    assert httpx.get(f"{live}/healthz").status_code == 200
    answers = [read_to_close(sock) for sock in trickling]
    assert all(answer.startswith("HTTP/1.1 408") for answer in answers), answers[0]
    assert all("CDS_SPINE_BODY_TIMEOUT_SECONDS" in answer for answer in answers)


def test_a_client_that_goes_away_mid_body_is_one_info_line(live, caplog):
    caplog.set_level(logging.INFO)
    body = json.dumps(hook_request("order-sign")).encode()
    raw_post_start(live, len(body), body[:100]).close()
    deadline = time.monotonic() + PATIENCE
    while "disconnected" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    [line] = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert line.levelno == logging.INFO and line.getMessage().startswith(f"POST /cds-services/{ORDER_SIGN} 499 ")
    assert line.getMessage().endswith("(the client disconnected before sending the whole body)")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert httpx.post(f"{live}/cds-services/{ORDER_SIGN}", content=body,
                      headers={"Content-Type": "application/json"}).status_code == 200


@pytest.mark.parametrize("server", ["http://ehr.example.org:99999/fhir", "https://ehr.example.org/fhir?tenant=a",
                                    "https://ehr.example.org/fhir#top", "https://user:pw@ehr.example.org/fhir",
                                    "ftp://ehr.example.org/fhir"])
def test_a_fhir_server_that_is_not_a_base_url_is_400(client, server):
    request = hook_request(fhirServer=server, fhirAuthorization=authorization(), omit=("procedures",))
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 400
    assert outcome_expressions(response) == ["fhirServer"]
