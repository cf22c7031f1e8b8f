"""A warning the clinician has already overridden is not repeated: override at order-select, then order-sign
for the same draft order gets no card for that topic (within CDS_SPINE_OVERRIDE_MEMORY_HOURS), and the audit
records the card held back with the override it follows; another finding, another order, an accepted card or
an override past the window still shows. Over HTTP, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from psycopg.pq import TransactionStatus
from sqlalchemy import event, inspect, select
from support import ORDER_SELECT, ORDER_SIGN, audit_store, call, condition, esi_order, hook_request

from cds_spine.app import create_app
from cds_spine.audit import tables
from cds_spine.audit.db import MIGRATIONS, migrate, open_engine
from cds_spine.audit.memory import OVERRIDDEN_LATELY, RECENT_OVERRIDES
from cds_spine.settings import Settings

CAUDA_EQUINA = "G83.4"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store_url, knowledge, clock):
    with TestClient(create_app(Settings(database_url=store_url), knowledge, clock=clock)) as client:
        yield client


def cards(client, service_id: str, **request) -> list[dict]:
    response = call(client, service_id, hook_request("order-select" if service_id == ORDER_SELECT else "order-sign",
                                                     **request))
    assert response.status_code == 200
    return response.json()["cards"]


def answer(client, card: dict, outcome: str) -> None:
    item = {"card": card["uuid"], "outcome": outcome, "outcomeTimestamp": datetime.now(UTC).isoformat()}
    if outcome == "overridden":
        item["overrideReason"] = {"reason": card["overrideReasons"][0]}
    else:
        item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
    assert client.post(f"/cds-services/{ORDER_SELECT}/feedback", json={"feedback": [item]}).status_code == 200


def suppressions(client) -> list:
    with audit_store(client).engine.connect() as connection:
        return list(connection.execute(select(tables.suppressions)))


def test_an_override_at_select_is_not_repeated_at_sign_and_the_audit_says_so(service):
    [selected] = cards(service, ORDER_SELECT)
    assert selected["source"]["topic"]["code"] == "conservative-missing"
    answer(service, selected, "overridden")
    assert cards(service, ORDER_SIGN) == []
    [held] = suppressions(service)
    assert (held.topic, held.overridden_card) == ("conservative-missing", selected["uuid"])
    with audit_store(service).engine.connect() as connection:
        assessment = connection.execute(select(tables.assessments).where(
            tables.assessments.c.id == held.assessment_id)).one()
    assert assessment.decision == "not-met" and assessment.order_reference == "ServiceRequest/esi-1"


def test_a_patient_without_overrides_costs_one_probe_of_the_feedback_alone(service):
    """Most patients have no override in the window: the memory asks the feedback index whether there is one and
    reads nothing more (PostgreSQL planned the four-table query afresh on every call with a card)."""
    statements: list[str] = []
    in_transaction: list[bool] = []
    engine = audit_store(service).engine

    def seen(_connection, cursor, statement, *_):
        statements.append(" ".join(statement.split()))
        if statement.startswith("SELECT feedback.id") and engine.dialect.name == "postgresql":
            in_transaction.append(cursor.connection.info.transaction_status != TransactionStatus.IDLE)

    event.listen(engine, "after_cursor_execute", seen)
    try:
        [selected] = cards(service, ORDER_SELECT)
        reads = [statement for statement in statements if statement.startswith("SELECT")]
        assert len(reads) == 1 and reads[0].startswith("SELECT feedback.id FROM feedback WHERE") and "JOIN" not in reads[0]
        # on PostgreSQL, outside a transaction: no BEGIN and ROLLBACK round trips around it
        assert in_transaction == ([False] if engine.dialect.name == "postgresql" else [])
        answer(service, selected, "overridden")
        statements.clear()
        assert cards(service, ORDER_SIGN) == []  # the override is found, and remembered
        assert [statement.split(" FROM ")[1].split(" ")[0] for statement in statements
                if statement.startswith("SELECT")] == ["feedback", "feedback"]
        assert "JOIN cards" in [statement for statement in statements if statement.startswith("SELECT")][1]
    finally:
        event.remove(engine, "after_cursor_execute", seen)


def test_a_new_finding_still_shows(service):
    [selected] = cards(service, ORDER_SELECT)
    answer(service, selected, "overridden")
    [red_flag] = cards(service, ORDER_SIGN, conditions=[condition(CAUDA_EQUINA)])
    assert red_flag["source"]["topic"]["code"] == "red-flag-injection"
    assert suppressions(service) == []


def test_another_order_or_an_accepted_card_still_shows(service):
    [selected] = cards(service, ORDER_SELECT)
    answer(service, selected, "overridden")
    [other] = cards(service, ORDER_SIGN, orders=[esi_order("esi-2", code="62321")])
    assert other["source"]["topic"]["code"] == "no-qualifying-diagnosis"  # a cervical ESI for lumbar radiculopathy
    answer(service, other, "accepted")
    assert len(cards(service, ORDER_SIGN, orders=[esi_order("esi-2", code="62321")])) == 1


def test_an_order_without_an_id_is_the_same_order_by_its_code(service):
    unnamed = esi_order()
    del unnamed["id"]
    [signed] = cards(service, ORDER_SIGN, orders=[unnamed])  # order-select cannot select an order without an id
    answer(service, signed, "overridden")
    assert cards(service, ORDER_SIGN, orders=[unnamed]) == []  # signed again (a new hookInstance)
    assert len(cards(service, ORDER_SIGN, orders=[esi_order("esi-3", code="62321")])) == 1


def test_the_memory_lasts_its_window(service, clock):
    [selected] = cards(service, ORDER_SELECT)
    answer(service, selected, "overridden")
    clock.now += timedelta(hours=23)
    assert cards(service, ORDER_SIGN) == []
    clock.now += timedelta(hours=2)
    assert len(cards(service, ORDER_SIGN)) == 1


def test_a_site_can_turn_the_memory_off(make_client):
    client = make_client(override_memory_hours=0)
    [selected] = cards(client, ORDER_SELECT)
    answer(client, selected, "overridden")
    assert len(cards(client, ORDER_SIGN)) == 1


def test_overrides_recorded_before_feedback_kept_its_patient_are_still_remembered(database_url, knowledge, clock):
    """Migration 0009: feedback now keeps its card's patient, which the memory reads first; feedback stored before
    it gets its patient from its call, so an override given just before the upgrade is not shown again after."""
    settings = Settings(database_url=database_url)
    with TestClient(create_app(settings, knowledge, clock=clock)) as client:
        [selected] = cards(client, ORDER_SELECT)
        answer(client, selected, "overridden")
    engine = open_engine(database_url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")  # the store as the previous release left it
        assert "patient" not in {column["name"] for column in inspect(connection).get_columns("feedback")}
    migrate(engine)
    with engine.connect() as connection:
        [kept] = connection.execute(select(tables.feedback.c.patient)).scalars()
        assert kept is not None and kept == connection.execute(select(tables.calls.c.patient)).scalars().first()
    engine.dispose()
    with TestClient(create_app(settings, knowledge, clock=clock)) as client:
        assert cards(client, ORDER_SIGN) == []


def test_the_memory_starts_from_the_patients_overrides_not_their_calls(tmp_path):
    """On every call with a card: an index probe that finds nothing for most patients (the probe alone, then). Before, SQLite's planner
    started from the patient's calls of the window, and the read grew with them (0.2 ms with none, 0.8 ms after
    3,600 calls of one patient)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    migrate(engine)
    sql = str(RECENT_OVERRIDES.compile(engine))
    with engine.connect() as connection:
        plan = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}",
                                                             ("p", "overridden", "t", "o", "t"))]
        probe = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {OVERRIDDEN_LATELY.compile(engine)}",
                                                              ("p", "overridden", "t", 1, 0))]
    engine.dispose()
    assert probe == ["SEARCH feedback USING COVERING INDEX ix_feedback_patient_outcome_received_at (patient=? AND "
                     "outcome=? AND received_at>?)"]
    assert plan[0].startswith("SEARCH feedback USING INDEX ix_feedback_patient_outcome_received_at (patient=? AND "
                              "outcome=? AND received_at>?)"), plan
    assert not any(step.startswith(("SCAN", "SEARCH calls USING INDEX ix_calls_patient")) for step in plan), plan
