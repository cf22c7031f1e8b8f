"""A fixture with known numbers for the report tests: real calls and feedback through HTTP."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from cds_spine.audit import tables
from support import (
    CPT, ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW, call, coded, condition, ct_yes, esi_order, hook_request, radiculopathy,
)

FEEDBACK = f"/cds-services/{ORDER_SIGN}/feedback"
KEY = "audit-key-for-tests"
EXPECTED_SUMMARY = {"calls": 8, "callsByStatus": {"200": 7, "412": 1}, "orders": 4, "met": 1, "notMet": 2,
                    "exempt": 1, "adherenceRate": 0.5, "cards": 3, "accepted": 1, "overridden": 2,
                    "overrideRate": 0.6667}


def surgery_request() -> dict:
    request = hook_request("order-sign", orders=[{**esi_order("surg-1"), "code": coded(CPT, "22612", "fusion")}])
    request["context"]["userId"] = "Practitioner/u2"
    return request


def populate(client) -> dict:
    """4 order-sign orders (met 1, not met 2, exempt 1; one repeated call), a 412, an order-select and a
    patient-view call; feedback: one override with a reason, one without, one acceptance. The surgery
    order is moved to last month."""
    nothing_tried = hook_request("order-sign")
    esi_card = call(client, ORDER_SIGN, nothing_tried).json()["cards"][0]
    assert call(client, ORDER_SIGN, nothing_tried).status_code == 200  # the same hookInstance again
    assert call(client, ORDER_SIGN, hook_request("order-sign", procedures=ct_yes())).json() == {"cards": []}
    red_flag = hook_request("order-sign", conditions=[radiculopathy(), condition("G83.4")])
    red_flag_card = call(client, ORDER_SIGN, red_flag).json()["cards"][0]
    surgery = surgery_request()
    surgery_card = call(client, ORDER_SIGN, surgery).json()["cards"][0]
    assert call(client, ORDER_SIGN, hook_request("order-sign", omit=("procedures",))).status_code == 412
    call(client, ORDER_SELECT, hook_request())
    call(client, PATIENT_VIEW, hook_request("patient-view"))
    stamp = "2026-11-01T10:00:00Z"
    feedback = [
        {"card": esi_card["uuid"], "outcome": "overridden", "outcomeTimestamp": stamp,
         "overrideReason": {"reason": {"system": esi_card["overrideReasons"][0]["system"], "code": "done-elsewhere"},
                            "userComment": "PT elsewhere"}},
        {"card": red_flag_card["uuid"], "outcome": "overridden", "outcomeTimestamp": stamp},
        {"card": surgery_card["uuid"], "outcome": "accepted", "outcomeTimestamp": stamp,
         "acceptedSuggestions": [{"id": surgery_card["suggestions"][1]["uuid"]}]},
    ]
    assert client.post(FEEDBACK, json={"feedback": feedback}).status_code == 200
    last_month = (datetime.now(timezone.utc).replace(day=1) - timedelta(days=3)).replace(hour=12)
    with client.app.state.store.engine.begin() as connection:
        connection.execute(update(tables.calls).where(tables.calls.c.hook_instance == surgery["hookInstance"])
                           .values(received_at=last_month))
    return {"last_month": last_month, "this_month": datetime.now(timezone.utc)}
