"""Reports count correctly over a fixture with known numbers: JSON endpoints, CSV, MeasureReport, CLI."""
from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import date, timedelta

import pytest
from cli import run_cli
from fastapi.testclient import TestClient
from fhir.resources.R4B.measure import Measure
from fhir.resources.R4B.measurereport import MeasureReport
from reporting import CLINICIAN_NAME, EXPECTED_COMPONENTS, EXPECTED_SUMMARY, KEY, SITE, audit_settings, populate
from support import ORDER_SIGN, call, hook_request

from cds_spine.app import create_app
from cds_spine.settings import Settings

AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def reported(make_client, store_url):
    client = make_client(database_url=store_url, **audit_settings())
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
    assert summary["components"] == EXPECTED_COMPONENTS
    assert summary["adherenceTarget"] == 0.8


def components(row: dict) -> dict:
    return {cid: (c["denominator"], c["excluded"], c["numerator"]) for cid, c in row["components"].items()}


def test_report_by_month_clinician_order_kind_region_site_and_service(reported):
    client, months = reported
    by_month = {row["group"]: row for row in get(client, "/audit/report", by="month")["rows"]}
    last = by_month[months["last_month"].strftime("%Y-%m")]
    assert (last["orders"], last["adherenceRate"], components(last)["qualifying-diagnosis"]) == (1, 0.0, (1, 0, 1))
    this_month = by_month[months["this_month"].strftime("%Y-%m")]
    assert (this_month["orders"], this_month["met"], this_month["stopped"], this_month["adherenceRate"]) == (
        6, 4, 1, 0.1667)
    by_clinician = {row["group"]: (row["label"], row["orders"]) for row in
                    get(client, "/audit/report", by="clinician")["rows"]}
    assert by_clinician == {"Practitioner/u1": (f"{CLINICIAN_NAME} (Practitioner/u1)", 6),
                            "Practitioner/u2": ("Practitioner/u2", 1)}
    by_kind = {row["group"]: row for row in get(client, "/audit/report", by="order-kind")["rows"]}
    assert {kind: (row["orders"], row["overridden"]) for kind, row in by_kind.items()} == {
        "esi": (6, 2), "surgery": (1, 0)}
    assert components(by_kind["esi"]) == {"overall": (6, 0, 1), "conservative-therapy": (6, 1, 4),
                                          "esi-frequency-interval": (6, 0, 5), "imaging-guidance": (6, 0, 5),
                                          "no-red-flag-at-injection": (6, 0, 5), "qualifying-diagnosis": (6, 0, 5), "regenerative-after-esi": (0, 0, 0),
                                          "esi-baseline-documented": (6, 0, 0),
                                          "esi-response-documented": (0, 0, 0)}
    assert components(by_kind["surgery"]) == {"overall": (1, 0, 0), "conservative-therapy": (1, 0, 0),
                                              "esi-frequency-interval": (0, 0, 0), "imaging-guidance": (0, 0, 0),
                                              "no-red-flag-at-injection": (0, 0, 0),
                                              "qualifying-diagnosis": (1, 0, 1), "regenerative-after-esi": (0, 0, 0),
                                              "esi-baseline-documented": (0, 0, 0),
                                              "esi-response-documented": (0, 0, 0)}
    by_site = {row["group"]: row["orders"] for row in get(client, "/audit/report", by="site")["rows"]}
    assert by_site == {SITE: 1, "(unknown)": 6}
    by_region = {row["group"]: row["orders"] for row in get(client, "/audit/report", by="region")["rows"]}
    assert by_region == {"lumbar-sacral": 6, "lumbar": 1}
    by_service = {row["group"]: row["orders"] for row in get(client, "/audit/report", by="service")["rows"]}
    assert by_service == {"spine-pathway-order-select": 1, ORDER_SIGN: 7}


def test_filters_drive_the_summary_and_the_report(reported):
    client, _ = reported
    assert get(client, "/audit/summary", kind="surgery")["orders"] == 1
    unguided = get(client, "/audit/summary", component="imaging-guidance")
    assert (unguided["orders"], unguided["components"]["imaging-guidance"]["numerator"]) == (1, 0)
    assert get(client, "/audit/summary", site=SITE)["orders"] == 1
    assert get(client, "/audit/summary", clinician="Practitioner/u2")["orders"] == 1
    assert get(client, "/audit/summary", overridden="true")["orders"] == 2
    assert get(client, "/audit/summary", component="overall")["orders"] == 6
    assert get(client, "/audit/summary", component="no-red-flag-at-injection")["orders"] == 1
    rows = get(client, "/audit/report", by="order-kind", decision="not-met")["rows"]
    assert {row["group"]: row["orders"] for row in rows} == {"esi": 1, "surgery": 1}


def test_period_filters(reported):
    client, months = reported
    this_month_start = months["this_month"].date().replace(day=1).isoformat()
    summary = get(client, "/audit/summary", since=this_month_start)
    assert (summary["orders"], summary["cards"]) == (6, 6)
    before = get(client, "/audit/summary", until=(months["last_month"].date() - timedelta(days=40)).isoformat())
    assert (before["orders"], before["adherenceRate"], before["overrideRate"]) == (0, None, None)
    assert {c["rate"] for c in before["components"].values()} == {None}


def test_override_reasons_and_comments(reported):
    client, _ = reported
    reasons = get(client, "/audit/override-reasons")["reasons"]
    assert reasons == [{"code": "done-elsewhere", "display": "Conservative therapy done outside this record",
                        "count": 1, "withComment": 1},
                       {"code": None, "display": "No reason given", "count": 1, "withComment": 0}]
    assert get(client, "/audit/override-reasons", decision="stopped")["reasons"][0]["code"] is None
    comments = get(client, "/audit/override-comments")
    assert comments["total"] == 2
    commented = [item for item in comments["items"] if item["comment"]]
    assert [(c["comment"], c["reason"], c["clinician"], c["kind"]) for c in commented] == [
        ("PT elsewhere", "Conservative therapy done outside this record", "Practitioner/u1", "esi")]
    assert get(client, f"/audit/decisions/{commented[0]['decision']}")["orders"][0]["decision"] == "not-met"
    assert get(client, "/audit/override-comments", kind="surgery")["total"] == 0


def test_decisions_are_paginated_and_drill_down_to_evidence_and_feedback(reported):
    client, _ = reported
    first = get(client, "/audit/decisions", page=1, pageSize=5, service="all", withOrders="false")
    second = get(client, "/audit/decisions", page=2, pageSize=5, service="all", withOrders="false")
    assert (first["total"], len(first["items"]), len(second["items"])) == (11, 5, 5)
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    third = get(client, "/audit/decisions", page=3, pageSize=5, service="all", withOrders="false")
    nothing_tried = [get(client, f"/audit/decisions/{item['id']}") for page in (first, second, third)
                     for item in page["items"] if item["service"] == ORDER_SIGN and item["orders"]
                     and item["orders"][0]["category"] == "esi"
                     and item["orders"][0]["findings"] == ["conservative-missing", "esi-baseline-undocumented"]]
    assert len(nothing_tried) == 2  # the same call sent twice is recorded twice (and counted once)
    feedback = [entry for detail in nothing_tried for card in detail["cards"] for entry in card["feedback"]]
    assert [(entry["outcome"], entry["overrideReason"], entry["comment"]) for entry in feedback] == [
        ("overridden", "done-elsewhere", "PT elsewhere")]
    assert nothing_tried[0]["orders"][0]["findings"][0]["code"] == "conservative-missing"
    assert nothing_tried[0]["orders"][0]["evidence"] == []
    assert nothing_tried[0]["orders"][0]["components"] == {
        "overall": "not-met", "conservative-therapy": "not-met", "esi-frequency-interval": "met",
        "imaging-guidance": "met", "no-red-flag-at-injection": "met", "qualifying-diagnosis": "met",
        "esi-baseline-documented": "not-met"}
    met = next(item for page in (first, second, third) for item in page["items"]
               if item["orders"] and item["orders"][0]["components"].get("overall") == "met")
    assert len(get(client, f"/audit/decisions/{met['id']}")["orders"][0]["evidence"]) == 7


def test_decisions_default_to_order_sign_calls_with_orders_and_filter_by_every_field(reported):
    client, _ = reported
    every = get(client, "/audit/decisions", pageSize=500, service="all", withOrders="false")["items"]
    default = get(client, "/audit/decisions", pageSize=500)
    expected = [item for item in every if item["service"] == ORDER_SIGN and item["orders"]]
    assert [item["id"] for item in default["items"]] == [item["id"] for item in expected] and default["total"] == 9
    preview = get(client, "/audit/decisions", service="spine-pathway-order-select")["items"]
    assert [item["service"] for item in preview] == ["spine-pathway-order-select"]

    def ids(**filters) -> list[str]:
        return [item["id"] for item in get(client, "/audit/decisions", pageSize=500, **filters)["items"]]

    for decision in ("met", "not-met", "exempt"):
        assert ids(decision=decision) == [i["id"] for i in expected if any(o["decision"] == decision
                                                                          for o in i["orders"])], decision
    assert ids(kind="surgery") == [i["id"] for i in expected if any(o["category"] == "surgery" for o in i["orders"])]
    assert len(ids(kind="surgery")) == 1 and len(ids(decision="met")) == 4
    for component in EXPECTED_COMPONENTS:
        assert ids(component=component) == [i["id"] for i in expected if any(
            o["components"].get(component) == "not-met" for o in i["orders"])], component
    assert len(ids(component="imaging-guidance")) == 1 and len(ids(component="overall")) == 7
    assert ids(site=SITE) == [i["id"] for i in expected if i["site"] == SITE] and len(ids(site=SITE)) == 1
    named = [i for i in expected if i["clinicianName"]]
    assert [i["clinicianName"] for i in named] == [CLINICIAN_NAME]
    # Issue 34, point 11: one region however the order's code names it (an ESI's lumbar-sacral, a surgery's lumbar)
    lumbar = [i["id"] for i in expected if any(o["region"] in ("lumbar", "lumbar-sacral") for o in i["orders"])]
    assert ids(region="lumbar") == ids(region="lumbar-sacral") == lumbar
    assert {o["region"] for i in expected if i["id"] in lumbar for o in i["orders"]} >= {"lumbar", "lumbar-sacral"}
    choices = get(client, "/audit/me")["regions"]
    assert {"code": "lumbar", "label": "lumbar"} in choices and "lumbar-sacral" not in {c["code"] for c in choices}
    assert ids(clinician="Practitioner/u1") == [i["id"] for i in expected if i["clinician"] == "Practitioner/u1"]
    assert ids(clinician="Practitioner/nobody") == []
    overridden = ids(overridden="true")
    assert overridden and overridden == [i["id"] for i in expected if i["overridden"]]
    assert sorted(ids(overridden="false") + overridden) == sorted(i["id"] for i in expected)


@pytest.mark.parametrize("params, field", [({"decision": "maybe"}, "decision"), ({"kind": "x"}, "kind"),
                                           ({"region": "neck"}, "region"), ({"overridden": "yes"}, "overridden"),
                                           ({"service": "nope"}, "service"), ({"doctor": "x"}, "doctor"),
                                           ({"component": "speed"}, "component")])
def test_decisions_refuse_unknown_filters_and_values(reported, params, field):
    client, _ = reported
    response = client.get("/audit/decisions", params=params, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == [field]


def test_csv_export_has_the_same_numbers(reported):
    client, _ = reported
    response = client.get("/audit/report", params={"by": "order-kind", "format": "csv"}, headers=AUTH)
    assert response.headers["content-type"].startswith("text/csv")
    rows = {row["group"]: row for row in csv.DictReader(io.StringIO(response.text))}
    esi = rows["esi"]
    assert (esi["orders"], esi["excluded"], esi["adherent"], esi["adherenceRate"]) == ("6", "0", "1", "0.1667")
    assert (esi["imaging-guidance denominator"], esi["imaging-guidance numerator"],
            esi["imaging-guidance rate"]) == ("6", "5", "0.8333")
    assert rows["surgery"]["imaging-guidance rate"] == ""
    filtered = client.get("/audit/report", params={"by": "order-kind", "format": "csv", "kind": "surgery"},
                          headers=AUTH)
    assert [row["group"] for row in csv.DictReader(io.StringIO(filtered.text))] == ["surgery"]


def population_counts(populations: list[dict]) -> tuple:
    counts = {p["code"]["coding"][0]["code"]: p["count"] for p in populations}
    return (counts["initial-population"], counts["denominator"], counts["denominator-exclusion"], counts["numerator"])


def test_the_measure_is_published_and_every_report_references_it(reported):
    client, _ = reported
    measure = get(client, "/audit/measure")
    Measure.model_validate(measure)
    assert [g["code"]["coding"][0]["code"] for g in measure["group"]] == list(EXPECTED_COMPONENTS)
    report = get(client, "/audit/measure-report", start="2000-01-01", end=date.today().isoformat())
    assert report["measure"] == f"{measure['url']}|{measure['version']}"


def test_measure_report_populations_components_and_strata(reported):
    client, months = reported
    today = date.today().isoformat()
    report = get(client, "/audit/measure-report", start="2000-01-01", end=today)
    MeasureReport.model_validate(report)
    assert (report["type"], report["period"]) == ("summary", {"start": "2000-01-01", "end": today})
    groups = {g["code"]["coding"][0]["code"]: g for g in report["group"]}
    for component, expected in EXPECTED_COMPONENTS.items():
        group = groups[component]
        assert population_counts(group["population"]) == (
            7, expected["denominator"], expected["excluded"], expected["numerator"]), component
        assert group.get("measureScore", {}).get("value") == expected["rate"], component  # none without a rate
    strata = {s["code"][0]["coding"][0]["code"]: {st["value"]["text"]: st for st in s["stratum"]}
              for s in groups["overall"]["stratifier"]}
    assert set(strata) == {"order-kind", "region", "clinician", "site", "month"}
    assert population_counts(strata["order-kind"]["esi"]["population"]) == (6, 6, 0, 1)
    assert strata["order-kind"]["esi"]["measureScore"]["value"] == 0.1667
    assert population_counts(strata["order-kind"]["surgery"]["population"]) == (1, 1, 0, 0)
    assert population_counts(strata["site"][SITE]["population"]) == (1, 1, 0, 0)
    assert population_counts(strata["clinician"][f"{CLINICIAN_NAME} (Practitioner/u1)"]["population"]) == (
        6, 6, 0, 1)
    assert population_counts(strata["month"][months["last_month"].strftime("%Y-%m")]["population"]) == (1, 1, 0, 0)
    imaging = {st["value"]["text"]: st for st in groups["imaging-guidance"]["stratifier"][0]["stratum"]}
    assert population_counts(imaging["surgery"]["population"]) == (1, 0, 0, 0) and "measureScore" not in imaging[
        "surgery"]
    empty = get(client, "/audit/measure-report", start="2000-01-01", end="2000-01-31")
    assert all("measureScore" not in g for g in empty["group"])
    assert {p["count"] for g in empty["group"] for p in g["population"]} == {0}


def test_subject_list_names_the_decisions_behind_each_count(reported):
    client, _ = reported
    report = get(client, "/audit/measure-report", start="2000-01-01", end=date.today().isoformat(),
                 type="subject-list")
    MeasureReport.model_validate(report)
    lists = {item["id"]: item for item in report["contained"]}
    imaging = next(g for g in report["group"] if g["code"]["coding"][0]["code"] == "imaging-guidance")
    for population in imaging["population"]:
        entries = lists[population["subjectResults"]["reference"][1:]]["entry"]
        assert len(entries) == population["count"]
    denominator = next(p for p in imaging["population"] if p["code"]["coding"][0]["code"] == "denominator")
    numerator = next(p for p in imaging["population"] if p["code"]["coding"][0]["code"] == "numerator")
    missing = ({e["item"]["identifier"]["value"] for e in lists[denominator["subjectResults"]["reference"][1:]]["entry"]}
               - {e["item"]["identifier"]["value"] for e in lists[numerator["subjectResults"]["reference"][1:]]["entry"]})
    assert len(missing) == 1
    unguided = get(client, f"/audit/decisions/{missing.pop()}")
    assert unguided["orders"][0]["components"]["imaging-guidance"] == "not-met" and unguided["site"] == SITE


@pytest.mark.parametrize("path,params,field", [
    ("/audit/measure-report", {"start": "2026-01-01"}, "end"),
    ("/audit/measure-report", {"start": "yesterday", "end": "2026-01-01"}, "start"),
    ("/audit/report", {"by": "patient"}, "by"),
    ("/audit/measure-report", {"start": "2026-01-01", "end": "2026-01-31", "type": "full"}, "type"),
    ("/audit/summary", {"colour": "red"}, "colour"),
    ("/audit/summary", {"since": "2026-02-01", "until": "2026-01-01"}, "since"),
    ("/audit/decisions", {"pageSize": "0"}, "pageSize"),
    # issue 32, L8: the last day there is (its next day does not exist), and a year 1 start
    ("/audit/summary", {"until": "9999-12-31"}, "until"),
    ("/audit/report", {"until": "9999-12-31"}, "until"),
    ("/audit/decisions", {"since": "0001-01-01"}, "since"),
    ("/audit/access-log", {"until": "9999-12-31"}, "until"),
    ("/audit/measure-report", {"start": "2026-01-01", "end": "9999-12-31"}, "end"),
])
def test_bad_parameters_are_400_naming_them(reported, path, params, field):
    client, _ = reported
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == [field]


def test_an_unknown_parameter_is_named_with_those_the_endpoint_takes(reported):
    client, _ = reported
    response = client.get("/audit/access-log", params={"colour": "red"}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"] == (
        "unknown parameter 'colour'; this endpoint takes page, pageSize, since, until, user")


@pytest.mark.slow  # runs the command line in a process of its own
def test_cli_report_gives_the_same_numbers(reported, store_url):
    client, _ = reported
    over_http = get(client, "/audit/report", by="clinician")["rows"]
    result = run_cli("report", "--by", "clinician", "--format", "json", CDS_SPINE_DATABASE_URL=store_url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == over_http
    as_csv = run_cli("report", "--by", "order-kind", "--format", "csv", CDS_SPINE_DATABASE_URL=store_url)
    over_http_csv = client.get("/audit/report", params={"by": "order-kind", "format": "csv"}, headers=AUTH).text
    assert as_csv.stdout == over_http_csv
    table = run_cli("report", "--by", "order-kind", CDS_SPINE_DATABASE_URL=store_url)
    header, esi, surgery = table.stdout.splitlines()
    assert header.split()[:5] == ["Group", "Orders", "Excluded", "Adherent", "Adherence"]
    assert esi.split()[:10] == ["esi", "6", "0", "1", "16.7%", "80.0%", "83.3%", "83.3%", "83.3%", "83.3%"]
    assert surgery.split()[:10] == ["surgery", "1", "0", "0", "0.0%", "0.0%", "–", "–", "–", "100.0%"]


@pytest.mark.slow  # runs the command line in a process of its own
def test_cli_measure_report_is_the_api_one(reported, store_url):
    client, _ = reported
    today = date.today().isoformat()
    result = run_cli("report", "--since", "2000-01-01", "--until", today, "--format", "measure-report",
                     CDS_SPINE_DATABASE_URL=store_url)
    assert result.returncode == 0, result.stderr
    from_cli = json.loads(result.stdout)
    over_http = get(client, "/audit/measure-report", start="2000-01-01", end=today)
    assert {**from_cli, "date": None} == {**over_http, "date": None}
    open_period = run_cli("report", "--format", "measure-report", CDS_SPINE_DATABASE_URL=store_url)
    assert open_period.returncode == 2 and "needs --since and --until" in open_period.stderr


@pytest.mark.slow  # runs the command line in a process of its own
def test_cli_report_since_until(reported, store_url):
    result = run_cli("report", "--since", "2000-01-01", "--until", "2000-12-31", "--format", "json",
                     CDS_SPINE_DATABASE_URL=store_url)
    assert json.loads(result.stdout)["rows"] == []
    bad = run_cli("report", "--since", "soon", CDS_SPINE_DATABASE_URL=store_url)
    assert bad.returncode == 2 and "soon" in bad.stderr


@pytest.mark.slow  # runs the command line in a process of its own
def test_cli_report_refuses_an_inverted_period(reported, store_url):
    result = run_cli("report", "--since", "2026-02-01", "--until", "2026-01-01", CDS_SPINE_DATABASE_URL=store_url)
    assert result.returncode == 2 and "is after --until" in result.stderr


@pytest.mark.slow  # runs the command line in a process of its own
def test_cli_report_refuses_a_store_that_does_not_exist_and_creates_none(tmp_path):
    missing = tmp_path / "nowhere.db"
    result = run_cli("report", CDS_SPINE_DATABASE_URL=f"sqlite:///{missing}")
    assert result.returncode == 3
    assert "no audit store at" in result.stderr and "the file does not exist" in result.stderr
    assert not missing.exists() and "No orders" not in result.stdout


@pytest.mark.slow  # runs the command line in a process of its own
def test_cli_report_refuses_an_empty_database(postgres_schema):
    result = run_cli("report", CDS_SPINE_DATABASE_URL=postgres_schema)
    assert result.returncode == 3 and "schema is at nothing (empty database)" in result.stderr


def test_a_hook_instance_sent_again_is_one_order_with_the_latest_answer_to_its_cards(make_client):
    """The examples re-sent with their fixed hookInstance: the decisions list shows both calls, overridden;
    the tiles count one order, overridden, not 0 %."""
    client = make_client(**audit_settings())
    request = hook_request("order-sign")
    cards = [call(client, ORDER_SIGN, request).json()["cards"][0] for _ in range(2)]
    feedback = {"card": cards[1]["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:00:00Z",
                "overrideReason": {"reason": cards[1]["overrideReasons"][0]}}
    assert client.post(f"/cds-services/{ORDER_SIGN}/feedback", json={"feedback": [feedback]}).status_code == 200
    summary = get(client, "/audit/summary")
    assert (summary["orders"], summary["cards"], summary["overridden"]) == (1, 1, 1)
    listed = get(client, "/audit/decisions")["items"]
    assert len(listed) == 2 and [item["overridden"] for item in listed].count(True) == 1


def test_requests_refused_before_a_call_are_counted_by_reason(tmp_path):
    """A sandbox at an origin not listed, a request that is not JSON, a wrong media type: none becomes a call,
    each is counted in the integration traffic by service, status and reason (written when the app stops, at
    the latest)."""
    database = f"sqlite:///{tmp_path / 'audit.db'}"
    settings = Settings(database_url=database, cors_origins=("https://sandbox.cds-hooks.org",), **audit_settings())
    with TestClient(create_app(settings)) as client:
        url = f"/cds-services/{ORDER_SIGN}"
        assert client.post(url, content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
        assert client.post(url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
        assert client.options(url, headers={"Origin": "http://localhost:3000",
                                            "Access-Control-Request-Method": "POST"}).status_code == 400
        assert call(client, ORDER_SIGN, hook_request("order-sign")).status_code == 200  # a call, not a refusal
    with TestClient(create_app(settings)) as client:
        refusals = get(client, "/audit/summary")["traffic"]["refusals"]
    assert {(r["status"], r["reason"]): r["count"] for r in refusals} == {
        (400, "structure"): 1, (415, "not-supported"): 1, (400, "cors-origin"): 1}
    assert {r["service"] for r in refusals} == {ORDER_SIGN}


def test_every_order_is_stamped_with_the_knowledge_that_evaluated_it_and_reports_split_by_it(
        knowledge, tmp_path, migrated_store):
    """Two releases of cards/ (the ESI's required days raised to 42) over one audit store: each order keeps
    the version that evaluated it, and a report filters and groups by it."""
    changed = tmp_path / "cards"
    shutil.copytree(Settings().knowledge_dir(), changed)
    pathway = changed / "pathway.yaml"
    pathway.write_text(pathway.read_text().replace("min_conservative_days: 28", "min_conservative_days: 42", 1))
    store = tmp_path / "audit.db"
    store.write_bytes(migrated_store.read_bytes())
    versions = []
    for cards_dir, calls in ((None, 2), (changed, 3)):
        settings = Settings(database_url=f"sqlite:///{store}", cards_dir=cards_dir, **audit_settings())
        with TestClient(create_app(settings, None if cards_dir else knowledge)) as client:
            versions.append(client.get("/healthz").json()["knowledgeVersion"])
            for _ in range(calls):
                assert call(client, ORDER_SIGN, hook_request("order-sign")).status_code == 200
    old, new = versions
    assert old == knowledge.version and new != old
    with TestClient(create_app(Settings(database_url=f"sqlite:///{store}", **audit_settings()), knowledge)) as client:
        by_knowledge = {row["group"]: row["orders"] for row in get(client, "/audit/report", by="knowledge")["rows"]}
        assert by_knowledge == {old: 2, new: 3}
        assert get(client, "/audit/summary", knowledge=new)["orders"] == 3
        assert [item["knowledgeVersion"] for item in get(client, "/audit/decisions", knowledge=old)["items"]] == [old] * 2
        bad = client.get("/audit/summary", params={"knowledge": "not-a-version"}, headers=AUTH)
        assert bad.status_code == 400 and "knowledge" in bad.text


def test_no_audit_answer_may_be_cached(reported):
    """JSON, CSV, the FHIR MeasureReport, the PDF report cards and a refusal: all carry patient data or say who read it."""
    client, _ = reported
    for path, params in (("/audit/summary", {}), ("/audit/report", {"by": "clinician", "format": "csv"}),
                         ("/audit/measure-report", {"start": "2000-01-01", "end": "2100-01-01"}),
                         ("/audit/report-cards", {"format": "pdf"}), ("/audit/decisions", {})):
        response = client.get(path, params=params, headers=AUTH)
        assert response.status_code == 200, (path, response.text[:200])
        assert response.headers["cache-control"] == "no-store", path
    refused = client.get("/audit/summary")
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"


def test_a_name_a_spreadsheet_would_run_is_written_as_text(make_client):
    """The EHR's Practitioner name is data: a cell beginning with =, +, - or @ is written with an apostrophe."""
    client = make_client(**audit_settings())
    request = hook_request("order-sign")
    request["prefetch"]["user"] = {"resourceType": "Practitioner", "id": "u1",
                                   "name": [{"text": "=HYPERLINK(\"https://evil.example\",\"x\")"}]}
    assert call(client, ORDER_SIGN, request).status_code == 200
    response = client.get("/audit/report", params={"by": "clinician", "format": "csv"}, headers=AUTH)
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert row["label"].startswith("'=HYPERLINK(") and row["orders"] == "1"


@pytest.mark.slow  # runs the command line in a process of its own
def test_a_clinicians_name_cannot_drive_the_terminal_of_whoever_reads_the_report(make_client, tmp_path):
    """Issue 32, L7: BEL, CR and a right-to-left override in a Practitioner's name are escaped in the table."""
    database = f"sqlite:///{tmp_path / 'audit.db'}"
    client = make_client(database_url=database)
    request = hook_request("order-sign")
    request["prefetch"]["user"] = {"resourceType": "Practitioner", "id": "u1",
                                   "name": [{"given": ["Ana\u0007\r"], "family": "\u202eZepol"}]}
    assert call(client, ORDER_SIGN, request).status_code == 200
    table = run_cli("report", "--by", "clinician", CDS_SPINE_DATABASE_URL=database)
    assert table.returncode == 0, table.stderr
    assert "Ana\\x07\\x0d \\u202eZepol" in table.stdout
    assert not {"\u0007", "\r", "\u202e"} & set(table.stdout)
