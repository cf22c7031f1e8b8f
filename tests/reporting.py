"""A fixture with known numbers for the report tests: real calls and feedback through HTTP."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from support import (
    CPT,
    ORDER_SELECT,
    ORDER_SIGN,
    PATIENT_VIEW,
    audit_store,
    bundle,
    call,
    coded,
    condition,
    ct_yes,
    day,
    esi_order,
    hook_request,
    procedure,
    radiculopathy,
)

from cds_spine.audit import tables
from cds_spine.audit.access import key_hash

FEEDBACK = f"/cds-services/{ORDER_SIGN}/feedback"
KEY = "analyst-key-for-tests-0123456789"
VIEWER_KEY = "viewer-key-for-tests-0123456789"
AUDIT_USERS = [{"name": "ana.analyst", "role": "analyst", "key_sha256": key_hash(KEY)},
               {"name": "vic.viewer", "role": "viewer", "key_sha256": key_hash(VIEWER_KEY)}]
AUDIT_USERS_ENV = json.dumps(AUDIT_USERS)
SITE = "Spine Clinic North"
CLINICIAN_NAME = "Dr Ana Lopez"
# 7 order-sign orders: conservative therapy met 4, not met 2, and one ESI stopped by a red flag (scored: it fails
# no-red-flag-at-injection and the overall measure; excluded from the conservative-therapy component only); among
# the 6 ESIs one is too soon after the last and one has no imaging guidance; one ESI has no qualifying diagnosis.
EXPECTED_SUMMARY = {"calls": 11, "callsByStatus": {"200": 10, "412": 1}, "orders": 7, "met": 4, "notMet": 2,
                    "exempt": 0, "stopped": 1, "excluded": 0, "adherent": 1, "adherenceRate": 0.1429, "cards": 7,
                    "accepted": 1, "overridden": 2, "overrideRate": 0.2857}
EXPECTED_COMPONENTS = {
    "overall": {"denominator": 7, "excluded": 0, "numerator": 1, "rate": 0.1429},
    "conservative-therapy": {"denominator": 7, "excluded": 1, "numerator": 4, "rate": 0.6667},
    "esi-frequency-interval": {"denominator": 6, "excluded": 0, "numerator": 5, "rate": 0.8333},
    "imaging-guidance": {"denominator": 6, "excluded": 0, "numerator": 5, "rate": 0.8333},
    "no-red-flag-at-injection": {"denominator": 6, "excluded": 0, "numerator": 5, "rate": 0.8333},
    "qualifying-diagnosis": {"denominator": 7, "excluded": 0, "numerator": 6, "rate": 0.8571},
    "regenerative-after-esi": {"denominator": 0, "excluded": 0, "numerator": 0, "rate": None},
    "esi-baseline-documented": {"denominator": 6, "excluded": 0, "numerator": 0, "rate": 0.0},
    "esi-response-documented": {"denominator": 0, "excluded": 0, "numerator": 0, "rate": None},
}


def audit_settings() -> dict:
    return {"audit_users": AUDIT_USERS}


def surgery_request() -> dict:
    request = hook_request("order-sign", orders=[{**esi_order("surg-1"), "code": coded(CPT, "63047", "laminectomy")}])
    request["context"]["userId"] = "Practitioner/u2"
    return request


def _at_the_clinic(request: dict) -> dict:
    """The EHR prefetches who orders (a named Practitioner) and the encounter's organization."""
    request["context"]["encounterId"] = "enc-1"
    request["prefetch"]["user"] = {"resourceType": "Practitioner", "id": "u1",
                                   "name": [{"prefix": ["Dr"], "given": ["Ana"], "family": "Lopez"}]}
    request["prefetch"]["encounter"] = bundle(
        {"resourceType": "Encounter", "id": "enc-1", "status": "in-progress",
         "serviceProvider": {"reference": "Organization/org-1"}},
        {"resourceType": "Organization", "id": "org-1", "name": SITE})
    return request


def populate(client) -> dict:
    """7 order-sign orders (EXPECTED_COMPONENTS; one call repeated), a 412, an order-select and a
    patient-view call; feedback: one override with a reason and a comment, one without, one acceptance.
    The surgery order is moved to last month; the ESI without guidance is ordered at SITE."""
    nothing_tried = hook_request("order-sign")
    esi_card = call(client, ORDER_SIGN, nothing_tried).json()["cards"][0]
    assert call(client, ORDER_SIGN, nothing_tried).status_code == 200  # the same hookInstance again
    [baseline] = call(client, ORDER_SIGN, hook_request("order-sign", procedures=ct_yes())).json()["cards"]
    assert baseline["indicator"] == "info" and "No baseline" in baseline["summary"]  # met, but undocumented
    red_flag = hook_request("order-sign", conditions=[radiculopathy(), condition("G83.4")])
    red_flag_card = call(client, ORDER_SIGN, red_flag).json()["cards"][0]
    surgery = surgery_request()
    surgery_card = call(client, ORDER_SIGN, surgery).json()["cards"][0]
    assert call(client, ORDER_SIGN, hook_request("order-sign", omit=("procedures",))).status_code == 412
    call(client, ORDER_SELECT, hook_request())
    call(client, PATIENT_VIEW, hook_request("patient-view"))
    unguided = _at_the_clinic(hook_request("order-sign", orders=[esi_order("esi-2", code="62322")],
                                           procedures=ct_yes()))
    assert len(call(client, ORDER_SIGN, unguided).json()["cards"]) == 1
    axial_only = hook_request("order-sign", conditions=[condition("M54.50")], procedures=ct_yes())
    assert len(call(client, ORDER_SIGN, axial_only).json()["cards"]) == 1
    too_soon = hook_request("order-sign", procedures=ct_yes() + [procedure("64483", day(-5))])
    assert len(call(client, ORDER_SIGN, too_soon).json()["cards"]) == 1
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
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=3)).replace(hour=12)
    with audit_store(client).engine.begin() as connection:
        connection.execute(update(tables.calls).where(tables.calls.c.hook_instance == surgery["hookInstance"])
                           .values(received_at=last_month))
    return {"last_month": last_month, "this_month": datetime.now(UTC)}
