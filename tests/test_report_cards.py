"""Clinician report cards over the reporting fixture (known numbers): the cards' numbers are the Measure's for
the same clinician and period, the PDF has one A4 page per clinician, no plain patient id appears anywhere,
from the API (each read recorded) and from the command line, on the live audit and on a bulk run."""
from __future__ import annotations

import json
import re
import statistics
import sys
import zlib
from datetime import date

import pytest
from cli import ROOT, run_cli
from reporting import KEY, VIEWER_KEY, audit_settings, populate
from support import ORDER_SIGN, call, hook_request

from cds_spine.privacy import PatientIdHasher

sys.path.insert(0, str(ROOT))
from bench.bulk_export import write_export  # noqa: E402

AUTH = {"Authorization": f"Bearer {KEY}"}
HASH_KEY = "report-cards-hash-key-0123456789abcdef"


@pytest.fixture
def carded(make_client, tmp_path):
    """The reporting fixture, stored with plain patient ids (the harder case: the cards must hash them)."""
    database = f"sqlite:///{tmp_path / 'audit.db'}"
    client = make_client(database_url=database, audit_plain_patient_ids=True, audit_hash_key=HASH_KEY,
                         **audit_settings())
    populate(client)
    return client, database


def get(client, path: str, **params):
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return response


def pdf_pages(content: bytes) -> int:
    assert content.startswith(b"%PDF-")
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", content))


def pdf_text(content: bytes) -> bytes:
    """Every content stream, decompressed."""
    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", content, re.S)
    return b"".join(zlib.decompress(s) if s.startswith(b"x") else s for s in streams)


def test_each_card_has_the_measures_numbers_for_its_clinician_and_the_sites_median(carded):
    client, _ = carded
    cards = get(client, "/audit/report-cards", format="json").json()
    by_clinician = {row["group"]: row for row in get(client, "/audit/report", by="clinician").json()["rows"]}
    assert {card["clinician"] for card in cards["cards"]} == set(by_clinician) and len(cards["cards"]) >= 2
    for card in cards["cards"]:
        reported = by_clinician[card["clinician"]]
        assert card["orders"] == reported["orders"]
        for component, numbers in card["components"].items():
            expected = reported["components"][component]
            assert (numbers["numerator"], numbers["scored"], numbers["rate"]) == (
                expected["numerator"], expected["denominator"] - expected["excluded"], expected["rate"])
    for component in ("overall", "conservative-therapy"):
        rates = [row["components"][component]["rate"] for row in by_clinician.values()
                 if row["components"][component]["rate"] is not None]
        assert {card["components"][component]["siteMedian"] for card in cards["cards"]} == {
            round(statistics.median(rates), 4)}
    overrides = {card["clinician"]: card for card in cards["cards"] if card["overrides"]}
    [dr_lopez_or_other] = [card for card in overrides.values() if any(r["display"].startswith("Conservative therapy done")
                                                                      for r in card["reasons"])]
    assert dr_lopez_or_other["supportedShare"] == round(1 / dr_lopez_or_other["overrides"], 4)  # done elsewhere: supported
    months = [m["month"] for card in cards["cards"] for m in card["months"]]
    assert len(set(months)) == 2  # this month and last (the surgery was moved there)


def test_an_analyst_sees_record_ids_where_the_audit_keeps_them_a_viewer_the_hash_and_a_page_per_clinician(carded):
    """Issue 34, point 10: a missed order names a patient a clinician can act on where plain ids are enabled (an
    analyst reads them, as in the drill-down); a viewer gets the keyed hash, never the id."""
    client, _ = carded
    hashed = PatientIdHasher(HASH_KEY.encode())("p1")
    numbers = get(client, "/audit/report-cards", format="json").json()
    missed = [m for card in numbers["cards"] for m in card["missed"]]
    assert numbers["patientsPlain"] and missed and {m["patient"] for m in missed} == {"p1"}
    assert "<td>p1</td>" in get(client, "/audit/report-cards").text
    viewer = {"Authorization": f"Bearer {VIEWER_KEY}"}
    seen = client.get("/audit/report-cards", params={"format": "json"}, headers=viewer).json()
    assert not seen["patientsPlain"] and {m["patient"] for card in seen["cards"] for m in card["missed"]} == {hashed}
    page = client.get("/audit/report-cards", headers=viewer).text
    assert ">p1<" not in page and hashed[:16] in page and "keyed hash only" in page
    assert len(re.findall(r'<section class="card"', page)) == len(numbers["cards"])
    pdf = client.get("/audit/report-cards", params={"format": "pdf"}, headers=viewer)
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf_pages(pdf.content) == len(numbers["cards"])
    assert b"595.28 841.89" in pdf.content  # A4, in points
    text = pdf_text(pdf.content)
    assert hashed[:16].encode() in text and b"(p1)" not in text
    assert b"(target 80 %)" in text and b"(100 %)" in text  # the chart's labelled target and its axis
    access = get(client, "/audit/access-log").json()["items"]
    assert {"/audit/report-cards"} <= {item["path"] for item in access}


@pytest.mark.slow  # the command line in processes of its own
def test_the_command_writes_the_pdf_an_index_and_a_page_per_clinician(carded, tmp_path):
    client, database = carded
    count = len(get(client, "/audit/report-cards", format="json").json()["cards"])
    out = tmp_path / "cards"
    result = run_cli("report-cards", "--out", str(out), CDS_SPINE_DATABASE_URL=database,
                     CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS="true", CDS_SPINE_AUDIT_HASH_KEY=HASH_KEY)
    assert result.returncode == 0, result.stderr
    assert f"{count} report cards" in result.stdout
    assert pdf_pages((out / "report-cards.pdf").read_bytes()) == count
    index = (out / "index.html").read_text()
    links = re.findall(r'href="([a-z0-9-]+\.html)"', index)
    assert len(links) == count and all((out / link).is_file() for link in links)
    for link in links:
        assert len(re.findall(r'<section class="card"', (out / link).read_text())) == 1
    pages = "".join(p.read_text() for p in out.glob("*.html"))  # the store keeps plain ids: the operator's cards
    assert "<td>p1</td>" in pages and "Patients appear by their record id." in pages  # name them


@pytest.mark.slow  # the command line in processes of its own
def test_report_cards_of_a_bulk_run(tmp_path):
    export = write_export(tmp_path / "export", 150, seed=5, today=date(2026, 6, 30))
    run = tmp_path / "run"
    audited = run_cli("audit-bulk", str(export), "--out", str(run), "--quiet", CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS="true",
                      CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'none.db'}")
    assert audited.returncode == 0, audited.stderr
    rows = json.loads((run / "summary.json").read_text())
    store = tmp_path / "audit.db"
    assert run_cli("migrate", CDS_SPINE_DATABASE_URL=f"sqlite:///{store}").returncode == 0
    out = tmp_path / "cards"
    result = run_cli("report-cards", "--run", str(run), "--out", str(out), CDS_SPINE_DATABASE_URL=f"sqlite:///{store}")
    assert result.returncode == 0, result.stderr
    assert f"({rows['procedures']:,} orders)" in result.stdout
    pages = pdf_pages((out / "report-cards.pdf").read_bytes())
    assert pages >= len(re.findall(r'href="[a-z0-9-]+\.html"', (out / "index.html").read_text())) >= 1


@pytest.mark.slow  # the command line in processes of its own
def test_every_missed_order_is_listed_on_further_pages_beside_the_previous_period(tmp_path):
    """Issue 34, point 10: a clinician's missed orders are all listed (they stopped at 12, "and N more"), on
    further PDF pages, with the patient's record id where the run keeps plain ids; each rate has the previous
    period of the same length beside it."""
    export = write_export(tmp_path / "export", 800, seed=11, today=date(2026, 6, 30))
    run = tmp_path / "run"
    audited = run_cli("audit-bulk", str(export), "--out", str(run), "--quiet", CDS_SPINE_AUDIT_PLAIN_PATIENT_IDS="true",
                      CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'none.db'}")
    assert audited.returncode == 0, audited.stderr
    store = tmp_path / "audit.db"
    assert run_cli("migrate", CDS_SPINE_DATABASE_URL=f"sqlite:///{store}").returncode == 0
    out = tmp_path / "cards"
    result = run_cli("report-cards", "--run", str(run), "--since", "2023-07-01", "--until", "2025-06-30",
                     "--out", str(out), CDS_SPINE_DATABASE_URL=f"sqlite:///{store}")
    assert result.returncode == 0, result.stderr
    index = (out / "index.html").read_text()
    assert "previous period\n    2021-06-30 to 2023-06-30" in index and "Patients appear by their record id." in index
    listed, previous = 0, []
    for link in re.findall(r'href="([a-z0-9-]+\.html)"', index):
        page = (out / link).read_text()
        total = int(re.search(r"Orders that missed the pathway: (\d+)", page)[1])
        rows = re.findall(r'<tr><td>(p[0-9a-f]{32})</td>', page)  # the generator's patient ids, whole
        assert len(rows) == total, link
        listed = max(listed, total)
        previous += re.findall(r'\)</td>\n\s*<td class="n">([0-9]+ %|-)</td>', page)
    assert listed > 12  # more than the one page that used to stop at 12
    assert any(value != "-" for value in previous)
    clinicians = len(re.findall(r'href="[a-z0-9-]+\.html"', index))
    pdf = (out / "report-cards.pdf").read_bytes()
    assert pdf_pages(pdf) > clinicians and rb"orders that missed the pathway \(continued\)" in pdf_text(pdf)


def test_a_clinician_named_index_never_takes_the_index_place(make_client, tmp_path):
    """Issue 32, L9: a clinician whose reference reads "index" gets index-2.html; index.html still lists every
    card."""
    from support import ORDER_SIGN, call, hook_request
    database = f"sqlite:///{tmp_path / 'audit.db'}"
    client = make_client(database_url=database, **audit_settings())
    populate(client)
    request = hook_request("order-sign")
    request["context"]["userId"] = "Index"
    assert call(client, ORDER_SIGN, request).status_code == 200
    cards = get(client, "/audit/report-cards", format="json").json()["cards"]
    out = tmp_path / "cards"
    assert run_cli("report-cards", "--out", str(out), CDS_SPINE_DATABASE_URL=database).returncode == 0
    links = re.findall(r'href="([a-z0-9-]+\.html)"', (out / "index.html").read_text())
    assert "index-2.html" in links and len(links) == len(cards)


def test_the_cards_name_the_real_period_the_unmet_components_in_words_and_no_median_of_one(carded, make_client):
    """Issue 34, point 10: "start to today", component codes cut off ("…esi-b"), and one clinician's own rate
    shown as the site median."""
    client, _ = carded
    numbers = get(client, "/audit/report-cards", format="json").json()
    period = numbers["period"]
    assert period["since"] and period["until"] and period["since"] <= period["until"]  # the orders' own days
    page = get(client, "/audit/report-cards").text
    assert "start to" not in page and "to today" not in page
    codes = set(numbers["cards"][0]["components"])
    unmet = [component for card in numbers["cards"] for m in card["missed"] for component in m["components"]]
    assert unmet and not set(unmet) & codes and all(" " in component for component in unmet)  # titles, not codes
    pdf = get(client, "/audit/report-cards", format="pdf")
    assert b"not met: " in pdf_text(pdf.content)
    alone = make_client(**audit_settings())
    call(alone, ORDER_SIGN, hook_request("order-sign"))
    single = get(alone, "/audit/report-cards", format="json").json()
    assert len(single["cards"]) == 1
    assert all(line["siteMedian"] is None for line in single["cards"][0]["components"].values())
    assert "one clinician: no median" in get(alone, "/audit/report-cards").text


def test_a_line_of_small_text_that_fits_takes_one_line_and_a_longer_one_wraps_whole():
    """A missed order's unmet components (and a comment) are drawn on one line when they fit, which is most: fpdf's
    wrapping measured each line again for every character (71 s for the report cards of a run of 115,000 missed
    orders); a longer text still wraps, never cut."""
    from cds_spine.audit.report_card_pages import _Card

    pdf = _Card(format="A4")
    pdf.set_margins(15, 14, 15)
    pdf.add_page()
    short = "    not met: Conservative therapy first; Imaging guidance"
    start = pdf.get_y()
    pdf.muted(short)
    assert pdf.get_y() - start == pytest.approx(4.5)
    words = [f"component-{n}" for n in range(40)]
    start = pdf.get_y()
    pdf.muted("    not met: " + "; ".join(words))
    assert pdf.get_y() - start >= 3 * 4.5
    text = pdf_text(bytes(pdf.output()))
    assert b"Imaging guidance" in text and all(word.encode() in text for word in words)
