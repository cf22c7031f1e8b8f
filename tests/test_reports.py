"""Reports count correctly over a fixture with known numbers: JSON endpoints, CSV, MeasureReport, CLI."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import pytest
from fhir.resources.R4B.measurereport import MeasureReport

from cli import run_cli
from reporting import EXPECTED_SUMMARY, KEY, populate
from support import ORDER_SIGN, call, hook_request

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def reported(make_client, database_url):
    client = make_client(database_url=database_url, audit_api_key=KEY)
    months = populate(client)
    return client, months


def get(client, path: str, **params):
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def test_summary_counts(reported):
    client, _ = reported
    summary = get(client, "/audit/summary")
    assert {key: summary[key] for key in EXPECTED_SUMMARY} == EXPECTED_SUMMARY


def test_report_by_month_clinician_order_type_and_service(reported):
    client, months = reported
    by_month = {row["group"]: row for row in get(client, "/audit/report", by="month")["rows"]}
    assert by_month[months["last_month"].strftime("%Y-%m")]["orders"] == 1
    this_month = by_month[months["this_month"].strftime("%Y-%m")]
    assert (this_month["orders"], this_month["met"], this_month["exempt"], this_month["adherenceRate"]) == (
        3, 1, 1, 0.6667)
    by_clinician = {row["group"]: row["orders"] for row in get(client, "/audit/report", by="clinician")["rows"]}
    assert by_clinician == {"Practitioner/u1": 3, "Practitioner/u2": 1}
    by_type = {row["group"]: (row["orders"], row["overridden"]) for row in
               get(client, "/audit/report", by="order-type")["rows"]}
    assert by_type == {"esi": (3, 2), "surgery": (1, 0)}
    by_service = {row["group"]: row["orders"] for row in get(client, "/audit/report", by="service")["rows"]}
    assert by_service == {"spine-pathway-order-select": 1, ORDER_SIGN: 4}


def test_period_filters(reported):
    client, months = reported
    this_month_start = months["this_month"].date().replace(day=1).isoformat()
    summary = get(client, "/audit/summary", since=this_month_start)
    assert (summary["orders"], summary["cards"]) == (3, 2)
    before = get(client, "/audit/summary", until=(months["last_month"].date() - timedelta(days=40)).isoformat())
    assert (before["orders"], before["adherenceRate"], before["overrideRate"]) == (0, None, None)


def test_override_reasons(reported):
    client, _ = reported
    reasons = get(client, "/audit/override-reasons")["reasons"]
    assert reasons == [{"code": "done-elsewhere", "display": "Conservative therapy done outside this record",
                        "count": 1, "withComment": 1},
                       {"code": None, "display": "No reason given", "count": 1, "withComment": 0}]


def test_decisions_are_paginated_and_drill_down_to_evidence_and_feedback(reported):
    client, _ = reported
    first = get(client, "/audit/decisions", page=1, pageSize=5, service="all", withOrders="false")
    second = get(client, "/audit/decisions", page=2, pageSize=5, service="all", withOrders="false")
    assert (first["total"], len(first["items"]), len(second["items"])) == (8, 5, 3)
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    nothing_tried = [get(client, f"/audit/decisions/{item['id']}") for page in (first, second)
                     for item in page["items"] if item["service"] == ORDER_SIGN and item["orders"]
                     and item["orders"][0]["category"] == "esi"
                     and item["orders"][0]["findings"] == ["conservative-missing"]]
    assert len(nothing_tried) == 2  # the same call sent twice is recorded twice (and counted once)
    feedback = [entry for detail in nothing_tried for card in detail["cards"] for entry in card["feedback"]]
    assert [(entry["outcome"], entry["overrideReason"], entry["comment"]) for entry in feedback] == [
        ("overridden", "done-elsewhere", "PT elsewhere")]
    assert nothing_tried[0]["orders"][0]["findings"][0]["code"] == "conservative-missing"
    assert nothing_tried[0]["orders"][0]["evidence"] == []
    met = next(item for page in (first, second) for item in page["items"]
               if item["orders"] and item["orders"][0]["decision"] == "met")
    assert len(get(client, f"/audit/decisions/{met['id']}")["orders"][0]["evidence"]) == 7


def test_decisions_default_to_order_sign_calls_with_orders_and_filter_by_every_field(reported):
    client, _ = reported
    every = get(client, "/audit/decisions", pageSize=500, service="all", withOrders="false")["items"]
    default = get(client, "/audit/decisions", pageSize=500)
    expected = [item for item in every if item["service"] == ORDER_SIGN and item["orders"]]
    assert [item["id"] for item in default["items"]] == [item["id"] for item in expected] and default["total"] == 6
    preview = get(client, "/audit/decisions", service="spine-pathway-order-select")["items"]
    assert [item["service"] for item in preview] == ["spine-pathway-order-select"]

    def ids(**filters) -> list[str]:
        return [item["id"] for item in get(client, "/audit/decisions", pageSize=500, **filters)["items"]]

    for decision in ("met", "not-met", "exempt"):
        assert ids(decision=decision) == [i["id"] for i in expected if any(o["decision"] == decision
                                                                          for o in i["orders"])], decision
    assert ids(kind="surgery") == [i["id"] for i in expected if any(o["category"] == "surgery" for o in i["orders"])]
    assert len(ids(kind="surgery")) == 1 and len(ids(decision="met")) == 1
    assert ids(region="lumbar") == [i["id"] for i in expected if any(o["region"] == "lumbar" for o in i["orders"])]
    assert ids(clinician="Practitioner/u1") == [i["id"] for i in expected if i["clinician"] == "Practitioner/u1"]
    assert ids(clinician="Practitioner/nobody") == []
    overridden = ids(overridden="true")
    assert overridden and overridden == [i["id"] for i in expected if i["overridden"]]
    assert sorted(ids(overridden="false") + overridden) == sorted(i["id"] for i in expected)


@pytest.mark.parametrize("params, field", [({"decision": "maybe"}, "decision"), ({"kind": "x"}, "kind"),
                                           ({"region": "neck"}, "region"), ({"overridden": "yes"}, "overridden"),
                                           ({"service": "nope"}, "service"), ({"doctor": "x"}, "doctor")])
def test_decisions_refuse_unknown_filters_and_values(reported, params, field):
    client, _ = reported
    response = client.get("/audit/decisions", params=params, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == [field]


def test_csv_export_has_the_same_numbers(reported):
    client, _ = reported
    response = client.get("/audit/report", params={"by": "order-type", "format": "csv"}, headers=AUTH)
    assert response.headers["content-type"].startswith("text/csv")
    rows = {row["group"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert (rows["esi"]["orders"], rows["esi"]["adherenceRate"]) == ("3", "0.6667")


def test_measure_report(reported):
    client, _ = reported
    today = date.today().isoformat()
    report = get(client, "/audit/measure-report", start="2000-01-01", end=today)
    MeasureReport.model_validate(report)
    populations = {p["code"]["coding"][0]["code"]: p["count"] for p in report["group"][0]["population"]}
    assert populations == {"denominator": 4, "numerator": 2}
    assert report["group"][0]["measureScore"]["value"] == 0.5
    assert report["period"] == {"start": "2000-01-01", "end": today}
    empty = get(client, "/audit/measure-report", start="2000-01-01", end="2000-01-31")
    assert "measureScore" not in empty["group"][0]
    assert {p["count"] for p in empty["group"][0]["population"]} == {0}


@pytest.mark.parametrize("path,params,field", [
    ("/audit/measure-report", {"start": "2026-01-01"}, "end"),
    ("/audit/measure-report", {"start": "yesterday", "end": "2026-01-01"}, "start"),
    ("/audit/report", {"by": "patient"}, "by"),
    ("/audit/summary", {"since": "2026-02-01", "until": "2026-01-01"}, "since"),
    ("/audit/decisions", {"pageSize": "0"}, "pageSize"),
])
def test_bad_parameters_are_400_naming_them(reported, path, params, field):
    client, _ = reported
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == [field]


def test_cli_report_gives_the_same_numbers(reported, database_url):
    client, _ = reported
    over_http = get(client, "/audit/report", by="clinician")["rows"]
    result = run_cli("report", "--by", "clinician", "--format", "json", CDS_SPINE_DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == over_http
    as_csv = run_cli("report", "--by", "order-type", "--format", "csv", CDS_SPINE_DATABASE_URL=database_url)
    assert as_csv.stdout.splitlines()[0].startswith("group,orders,met,notMet,exempt,adherenceRate")
    table = run_cli("report", "--by", "month", CDS_SPINE_DATABASE_URL=database_url)
    assert table.stdout.splitlines()[0].split()[:2] == ["Group", "Orders"] and "66.7%" in table.stdout


def test_cli_report_since_until(reported, database_url):
    result = run_cli("report", "--since", "2000-01-01", "--until", "2000-12-31", "--format", "json",
                     CDS_SPINE_DATABASE_URL=database_url)
    assert json.loads(result.stdout)["rows"] == []
    bad = run_cli("report", "--since", "soon", CDS_SPINE_DATABASE_URL=database_url)
    assert bad.returncode == 2 and "soon" in bad.stderr


def test_cli_report_refuses_an_inverted_period(reported, database_url):
    result = run_cli("report", "--since", "2026-02-01", "--until", "2026-01-01", CDS_SPINE_DATABASE_URL=database_url)
    assert result.returncode == 2 and "is after --until" in result.stderr


def test_cli_report_refuses_a_store_that_does_not_exist_and_creates_none(tmp_path):
    missing = tmp_path / "nowhere.db"
    result = run_cli("report", CDS_SPINE_DATABASE_URL=f"sqlite:///{missing}")
    assert result.returncode == 3
    assert "no audit store at" in result.stderr and "the file does not exist" in result.stderr
    assert not missing.exists() and "No orders" not in result.stdout


def test_cli_report_refuses_an_empty_database(postgres_schema):
    result = run_cli("report", CDS_SPINE_DATABASE_URL=postgres_schema)
    assert result.returncode == 3 and "schema is at nothing (empty database)" in result.stderr


# --- access ---------------------------------------------------------------------------------------------

PROTECTED = ["/audit/summary", "/audit/report", "/audit/override-reasons", "/audit/decisions",
             "/audit/measure-report?start=2026-01-01&end=2026-01-31", "/dashboard/static/dashboard.js"]


@pytest.mark.parametrize("path", PROTECTED + ["/dashboard", "/dashboard/sign-in"])
def test_without_a_configured_key_everything_audit_is_404(make_client, path):
    client = make_client()
    assert client.get(path, headers=AUTH).status_code == 404


@pytest.mark.parametrize("path", PROTECTED[:5])
def test_missing_or_wrong_key_is_401(make_client, path):
    client = make_client(audit_api_key=KEY)
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, headers=AUTH).status_code == 200


def test_ehr_tokens_do_not_open_the_audit(make_client):
    client = make_client(audit_api_key=KEY)
    call(client, ORDER_SIGN, hook_request("order-sign"))
    assert client.get("/audit/decisions", headers={"Authorization": "Bearer some-ehr-jwt"}).status_code == 401


def test_dashboard_sign_in_keeps_a_session_cookie(make_client):
    client = make_client(audit_api_key=KEY)
    page = client.get("/dashboard", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/dashboard/sign-in")
    wrong = client.post("/dashboard/sign-in", data={"key": "nope"}, follow_redirects=False)
    assert wrong.headers["location"] == "/dashboard/sign-in?failed=1"
    right = client.post("/dashboard/sign-in", data={"key": KEY}, follow_redirects=False)
    assert right.headers["location"] == "/dashboard"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie
    assert client.get("/audit/summary").status_code == 200  # the cookie opens the JSON endpoints
    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 200 and "default-src 'self'" in dashboard.headers["content-security-policy"]
    client.post("/dashboard/sign-out")
    assert client.get("/audit/summary").status_code == 401


def test_forged_session_cookie_is_refused(make_client):
    client = make_client(audit_api_key=KEY)
    client.cookies.set("cds_spine_audit_session", "9999999999.deadbeef")
    assert client.get("/audit/summary").status_code == 401
