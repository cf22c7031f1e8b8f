"""The audit store, on SQLite and on PostgreSQL: every call and feedback recorded, linked, once."""
from __future__ import annotations

import hashlib
import hmac
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from reporting import KEY, audit_settings
from sqlalchemy import select, text
from support import (
    ORDER_SELECT,
    ORDER_SIGN,
    PATIENT_VIEW,
    audit_store,
    authorization,
    bundle,
    call,
    ct_yes,
    esi_order,
    hook_request,
    hook_state,
)

from cds_spine.audit import tables
from cds_spine.audit.db import SQLITE_CACHE_KIB, migrate, open_engine

FEEDBACK = f"/cds-services/{ORDER_SIGN}/feedback"


def rows(client, table) -> list:
    with audit_store(client).engine.connect() as connection:
        return list(connection.execute(select(table)))


@pytest.fixture
def audited(make_client, database_url):
    def make(**settings):
        return make_client(database_url=database_url, **settings)
    return make


def test_migrations_create_exactly_the_schema(database_url):
    engine = open_engine(database_url)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), tables.metadata) == []
    engine.dispose()


def test_n_calls_give_n_records_with_what_happened(audited):
    client = audited()
    with_encounter = hook_request("order-sign")
    with_encounter["context"]["encounterId"] = "enc-1"
    requests = [(ORDER_SIGN, with_encounter),
                (ORDER_SELECT, hook_request(procedures=ct_yes())),
                (ORDER_SIGN, hook_request("order-sign", orders=[esi_order(code="99213")])),
                (PATIENT_VIEW, hook_request("patient-view", procedures=ct_yes())),
                (ORDER_SIGN, hook_request("order-sign", omit=("procedures",)))]
    responses = [call(client, service, request) for service, request in requests]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 412]
    calls = {row.hook_instance: row for row in rows(client, tables.calls)}
    assert len(calls) == 5
    for (service, request), response in zip(requests, responses, strict=True):
        row = calls[request["hookInstance"]]
        assert (row.service_id, row.hook, row.status, row.user_id) == (
            service, request["hook"], response.status_code, "Practitioner/u1")
        assert row.patient != "p1" and len(row.patient) == 24
        assert row.knowledge_version == hook_state(client).knowledge_version and row.latency_ms > 0
    first = calls[requests[0][1]["hookInstance"]]
    assert (first.encounter_id, first.data_source, first.fetched_keys) == ("enc-1", "prefetch", [])
    assert calls[requests[2][1]["hookInstance"]].data_source == "none"
    assert "procedures" in calls[requests[4][1]["hookInstance"]].problem


def test_orders_findings_evidence_and_cards_are_recorded(audited):
    client = audited()
    request = hook_request("order-sign", procedures=ct_yes()[:2], orders=[esi_order(code="62322")])
    card = call(client, ORDER_SIGN, request).json()["cards"][0]
    [assessment] = rows(client, tables.assessments)
    assert (assessment.order_reference, assessment.category, assessment.region, assessment.detail) == (
        "ServiceRequest/esi-1", "esi", "lumbar-sacral", "none")
    assert assessment.codes[0]["code"] == "62322"
    assert (assessment.decision, assessment.conservative_days, assessment.required_days) == ("not-met", 8, 28)
    assert [f["code"] for f in assessment.findings] == ["conservative-short", "no-imaging-guidance",
                                                        "esi-baseline-undocumented"]  # notes are recorded too
    assert assessment.findings[0]["evidence"] == [e["reference"] for e in assessment.evidence]
    assert {e["category"] for e in assessment.evidence} == {"physical-therapy"}
    [stored_card] = rows(client, tables.cards)
    assert (stored_card.uuid, stored_card.indicator, stored_card.summary, stored_card.assessment_id) == (
        card["uuid"], "warning", card["summary"], assessment.id)
    assert stored_card.suggestion_uuids == [s["uuid"] for s in card["suggestions"]]


def test_412_records_the_orders_it_could_not_evaluate(audited):
    client = audited()
    call(client, ORDER_SIGN, hook_request("order-sign", omit=("conditions",)))
    [assessment] = rows(client, tables.assessments)
    assert (assessment.category, assessment.decision) == ("esi", None)
    assert rows(client, tables.cards) == []


def test_data_fetched_from_the_fhir_server_is_noted(audited, httpx_mock):
    client = audited()
    httpx_mock.add_response(url="https://ehr.example.org/fhir/Procedure?patient=p1", json=bundle(*ct_yes()))
    request = hook_request(omit=("procedures",), fhirServer="https://ehr.example.org/fhir",
                           fhirAuthorization=authorization())
    call(client, ORDER_SELECT, request)
    [row] = rows(client, tables.calls)
    assert (row.data_source, row.fetched_keys) == ("fhir", ["procedures"])


def test_patient_hash_is_keyed_and_stable(audited, make_client, database_url):
    first = audited()
    call(first, ORDER_SIGN, hook_request("order-sign"))
    again = audited()  # a restart on the same store
    call(again, ORDER_SIGN, hook_request("order-sign"))
    assert len({row.patient for row in rows(again, tables.calls)}) == 1
    keyed = audited(audit_hash_key="secret")
    call(keyed, ORDER_SIGN, hook_request("order-sign"))
    expected = hmac.new(b"secret", b"p1", hashlib.sha256).hexdigest()[:24]
    assert expected in {row.patient for row in rows(keyed, tables.calls)}


def test_plain_patient_ids_only_when_allowed(audited):
    client = audited(audit_plain_patient_ids=True)
    call(client, ORDER_SIGN, hook_request("order-sign"))
    assert [row.patient for row in rows(client, tables.calls)] == ["p1"]


def test_feedback_links_to_its_card_once_and_unknown_cards_are_flagged(audited):
    client = audited()
    card = call(client, ORDER_SIGN, hook_request("order-sign")).json()["cards"][0]
    [call_row] = rows(client, tables.calls)
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:00:00Z",
            "overrideReason": {"reason": {"system": card["overrideReasons"][0]["system"], "code": "done-elsewhere"},
                               "userComment": "PT at another clinic"}}
    unknown = {**item, "card": "not-a-card-of-ours"}
    for _ in range(2):
        assert client.post(FEEDBACK, json={"feedback": [item, unknown]}).status_code == 200
    stored = {row.card_uuid: row for row in rows(client, tables.feedback)}
    assert len(stored) == 2
    assert (stored[card["uuid"]].call_id, stored[card["uuid"]].unknown_card) == (call_row.id, False)
    assert (stored[card["uuid"]].override_code, stored[card["uuid"]].override_comment) == (
        "done-elsewhere", "PT at another clinic")
    assert (stored["not-a-card-of-ours"].call_id, stored["not-a-card-of-ours"].unknown_card) == (None, True)


def test_store_down_means_503_not_unrecorded_advice(audited, caplog):
    client = audited()
    with audit_store(client).engine.begin() as connection:
        connection.execute(text("DROP TABLE cards"))
    response = call(client, ORDER_SIGN, hook_request("order-sign"))
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"
    assert "audit store failed" in caplog.text


@pytest.mark.parametrize("path", ["/audit/summary", "/audit/report", "/audit/decisions", "/audit/override-reasons",
                                  "/audit/measure-report?start=2026-01-01&end=2026-01-31"])
def test_audit_reads_with_the_store_down_are_503(audited, caplog, path):
    client = audited(**audit_settings())
    with audit_store(client).engine.begin() as connection:
        connection.execute(text("DROP TABLE cards"))
    response = client.get(path, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"
    assert "audit store failed (" in caplog.text


def test_store_down_can_be_set_to_answer_and_log(audited, caplog):
    client = audited(audit_required=False)
    with audit_store(client).engine.begin() as connection:
        connection.execute(text("DROP TABLE cards"))
    assert call(client, ORDER_SIGN, hook_request("order-sign")).status_code == 200
    assert "audit store failed to record a call" in caplog.text


def test_each_sqlite_connection_keeps_a_bounded_page_cache(tmp_path):
    """Issue 35: SQLite's default 2 MiB cache per pooled connection, refilled after every commit, made the service's
    memory grow with the calls it answered; every connection, whichever thread opens it, gets the bound."""
    engine = open_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    sizes = []

    def read() -> None:
        with engine.connect() as connection:
            sizes.append(connection.execute(text("PRAGMA cache_size")).scalar())

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read()
    assert sizes == [-SQLITE_CACHE_KIB] * 4 and SQLITE_CACHE_KIB <= 512
    engine.dispose()
