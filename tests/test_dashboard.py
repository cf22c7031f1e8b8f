"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright, against a real server."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from browser import CHROMIUM_FLAGS, apply, chart_data, painted_pixels, rows
from cli import PATIENCE, ROOT, serving
from playwright.sync_api import Browser, Page, expect, sync_playwright
from reporting import AUDIT_USERS_ENV, CLINICIAN_NAME, KEY, SITE, audit_settings, populate
from support import ORDER_SIGN, call, hook_request

from cds_spine.refusals import FLUSH_SECONDS

OUTPUT = ROOT / "test-output"
@pytest.fixture
def dashboard_server(make_client, tmp_path):
    database = f"sqlite:///{tmp_path / 'dashboard.db'}"
    months = populate(make_client(database_url=database, **audit_settings()))
    with serving(tmp_path, CDS_SPINE_DATABASE_URL=database, CDS_SPINE_AUDIT_USERS=AUDIT_USERS_ENV) as base:
        yield base, months


def target_line_pixel(page) -> list[int]:
    """The colour of the adherence chart at the target's height, just inside its left edge (away from any dot)."""
    return page.evaluate("""() => { const chart = Chart.getChart("adherence-chart");
        const y = chart.scales.rate.getPixelForValue(chart.options.plugins.targetLine.value);
        const ratio = chart.currentDevicePixelRatio;
        return [...chart.ctx.getImageData(Math.round((chart.chartArea.left + 3) * ratio), Math.round(y * ratio), 1, 1)
          .data]; }""")


def test_dashboard_renders_the_fixture_numbers_and_filters_drive_every_panel(chromium, dashboard_server, knowledge):
    base, months = dashboard_server
    OUTPUT.mkdir(exist_ok=True)
    last, this = months["last_month"].strftime("%Y-%m"), months["this_month"].strftime("%Y-%m")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.goto(f"{base}/dashboard")
        assert page.url.endswith("/dashboard/sign-in")
        page.fill("#key", "wrong")
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard/sign-in?failed=1")
        page.wait_for_selector("#failed", state="visible")
        page.goto(f"{base}/dashboard/sign-in?wait=890")  # where a paused sign-in lands (issue 32: per-user lockout)
        page.wait_for_selector("#wait", state="visible")
        assert "signing in is paused for 15 minutes" in " ".join(page.text_content("#wait").split())
        page.fill("#key", KEY)
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard")
        page.wait_for_selector("body[data-loaded=true]", timeout=PATIENCE * 1000)

        assert page.text_content("#who") == "ana.analyst (analyst)"
        assert [page.text_content(f"#tile-{t}") for t in ("orders", "adherence", "cards", "override")] == [
            "7", "14.3%", "7", "28.6%"]
        assert page.text_content("#tile-adherence-counts") == "1 of 7 (0 excluded, red flag); target 80.0%"
        donut = chart_data(page, "decision-chart")
        assert donut["data"] == [[4, 2, 0, 1]] and donut["labels"][0] == "Met (4)"
        assert donut["labels"][3] == "Injection stopped, red flag (1)"
        assert len(set(donut["colours"][0])) == 4
        components = chart_data(page, "component-chart")
        assert components["data"] == [[14.3, 66.7, 83.3, 83.3, 83.3, 85.7, None, 0, None]]  # no rate without orders
        assert components["counts"] == [["1/7", "4/6", "5/6", "5/6", "5/6", "6/7", "n/a", "0/6", "n/a"]]
        trend = chart_data(page, "adherence-chart")
        assert trend["labels"] == [last, this]
        assert trend["data"] == [[0, 16.7], [80, 80], [1, 6]]  # adherence, the target line, orders
        assert trend["counts"][2] == [1, 6]
        reasons = chart_data(page, "reasons-chart")
        assert [" ".join(label) for label in reasons["labels"]] == [
            "Conservative therapy done outside this record", "No reason given"]
        assert reasons["data"] == [[1, 1]] and reasons["counts"] == [[1, 1]]
        for canvas in ("adherence-chart", "component-chart", "decision-chart", "reasons-chart"):
            assert painted_pixels(page, canvas) > 500, canvas
        assert rows(page, "by-clinician") == [[f"{CLINICIAN_NAME} (Practitioner/u1)", "6", "16.7%", "33.3%"],
                                              ["Practitioner/u2", "1", "0.0%", "0.0%"]]
        assert [r[:2] for r in rows(page, "by-kind")] == [["esi", "6"], ["surgery", "1"]]
        assert [r[:2] for r in rows(page, "by-site")] == [["(unknown)", "6"], [SITE, "1"]]
        comments = rows(page, "comments")
        assert len(comments) == 2 and ["PT elsewhere"] == [c[4] for c in comments if c[4] != "–"]
        decisions = rows(page, "decisions")
        assert len(decisions) == 9  # order-sign calls with orders
        # Issue 34, point 11: each order reads as its card led, in words ("met, overall met" sat beside warnings)
        words = set(knowledge.topics.displays.values()) | {"no finding"}
        line = re.compile(r"^(esi|surgery|regenerative) (lumbar|cervical/thoracic|cervical|thoracic): (.+?)"
                          r"( \(measure (met|not-met)\))?$")
        for row in decisions:
            for order in row[3].split("; "):
                found = line.match(order)
                assert found and found[3] in words, order
            if "warning" in row[5]:
                assert knowledge.topics.displays["criteria-met"] not in row[3], row
        traffic = rows(page, "traffic-calls")  # everything the EHR sent, patient-view and previews included
        assert ["spine-pathway-patient-view", "200", "1"] in traffic and ["spine-pathway-order-select", "200", "1"] in \
            traffic and ["spine-pathway-order-sign", "412", "1"] in traffic
        assert sorted(rows(page, "traffic-feedback")) == [["spine-pathway-order-sign", "accepted", "1"],
                                                          ["spine-pathway-order-sign", "overridden", "2"]]
        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)

        apply(page, kind="surgery")  # a filter changes every panel and the CSV
        assert page.text_content("#tile-orders") == "1"
        assert chart_data(page, "decision-chart")["data"] == [[0, 1, 0, 0]]
        assert chart_data(page, "adherence-chart")["labels"] == [last]
        red, green, blue, _ = target_line_pixel(page)  # one month: the target is still a line across the chart
        assert red > 150 and green < 140 and blue < 80, (red, green, blue)
        assert [r[0] for r in rows(page, "by-kind")] == ["surgery"]
        assert [r[0] for r in rows(page, "by-clinician")] == ["Practitioner/u2"]
        assert len(rows(page, "decisions")) == 1 and rows(page, "comments") == []
        assert page.is_visible("#reasons .empty") and page.is_visible("#comments + .empty")
        csv_url = "a => a.pathname + a.search"  # the link as the browser resolves it against <base>
        assert page.eval_on_selector("#csv", csv_url) == "/audit/report?kind=surgery&by=month&format=csv"
        page.select_option("#csv-by", "clinician")
        assert page.eval_on_selector("#csv", csv_url) == "/audit/report?kind=surgery&by=clinician&format=csv"
        assert page.eval_on_selector("#report-cards", csv_url) == "/audit/report-cards?kind=surgery"
        assert page.eval_on_selector("#report-cards-pdf", csv_url) == "/audit/report-cards?kind=surgery&format=pdf"
        with page.expect_popup() as opened:  # the report cards, filtered as the dashboard is
            page.click("#report-cards")
        cards = opened.value
        cards.wait_for_load_state()
        assert cards.locator("section.card").count() == 1 and "Practitioner/u2" in cards.inner_text("section.card h2")
        cards.close()

        apply(page, kind="", since="2000-01-01", until="2000-01-31")  # an empty period says so
        assert page.text_content("#tile-orders") == "0"
        for panel in ("#trend", "#components", "#decisions-figure", "#reasons"):
            assert page.is_visible(f"{panel} .empty") and not page.is_visible(f"{panel} canvas"), panel
        assert page.is_visible("#by-clinician + .empty") and page.is_visible("#decisions + .empty")
        page.screenshot(path=str(OUTPUT / "dashboard-empty.png"), full_page=True)

        page.click("#reset")
        expect(page.locator("#tile-orders")).to_have_text("7")
        page.wait_for_selector("body[data-loaded=true]")
        page.focus("#since")
        for _ in range(300):  # keyboard only: Tab to a decision, Enter opens its drill-down
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.closest('#decisions tbody') !== null"):
                break
        else:
            pytest.fail("Tab never reached the decisions list")
        page.keyboard.press("Enter")
        page.wait_for_selector("#detail:not([hidden])")
        assert page.evaluate("document.activeElement.id") == "detail"
        box = page.locator("#detail").bounding_box()
        assert 0 <= box["y"] < 1000, "the drill-down opens in view"
        detail = page.text_content("#detail-body")
        assert "Components" in detail and "Conservative therapy" in detail  # components and findings in words
        assert "conservative-therapy:" not in detail and "conservative therapy " in detail
        page.keyboard.press("Escape")
        assert page.is_hidden("#detail")
        assert page.evaluate("document.activeElement.closest('#decisions tbody') !== null")

        page.emulate_media(media="print")  # the one-page summary for the meeting
        assert page.is_hidden("#decisions") and page.is_hidden("#filters") and page.is_visible("#print-title")
        pdf = page.pdf(format="A4", landscape=True, print_background=True)
        (OUTPUT / "dashboard-summary.pdf").write_bytes(pdf)
        assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1
        page.screenshot(path=str(OUTPUT / "dashboard-print.png"), full_page=True)
        browser.close()
    assert errors == []


def test_the_dashboard_works_under_a_proxy_path_prefix(make_client):
    """A proxy serves the service under /cds-spine and strips the prefix: every redirect, link, form and
    script URL the pages use must carry it."""
    client = make_client(**audit_settings(), root_path="/cds-spine")
    to_sign_in = client.get("/dashboard", follow_redirects=False)
    assert (to_sign_in.status_code, to_sign_in.headers["location"]) == (303, "/cds-spine/dashboard/sign-in")
    signed_in = client.post("/dashboard/sign-in", data={"key": KEY}, follow_redirects=False)
    assert signed_in.headers["location"] == "/cds-spine/dashboard"
    for page in ("/dashboard/sign-in", "/dashboard"):
        html = client.get(page).text
        [base] = re.findall(r'<base href="([^"]+)">', html)
        assert base == "/cds-spine/dashboard/"
        for link in re.findall(r'(?:href|src|action)="([^"]+)"', html):
            if link.startswith("data:") or link == base:
                continue
            resolved = urljoin(f"https://proxy.example.org{base}", link.replace("&amp;", "&"))
            path = urlsplit(resolved).path
            assert path.startswith("/cds-spine/"), (page, link)
            if path.endswith((".js", ".css")):
                assert client.get(path.removeprefix("/cds-spine")).status_code == 200
    scripts = " ".join(path.read_text() for path in (ROOT / "src/cds_spine/audit/dashboard/static").glob("*.js")
                       if path.name != "chart.umd.min.js")
    assert not re.findall(r'["`](/audit|/dashboard)', scripts), "scripts use URLs relative to <base>"


FITS = """() => ({ page: document.documentElement.scrollWidth, view: window.innerWidth,
    outside: [...document.querySelectorAll('figure, .tile, table')].filter(e => e.offsetParent !== null)
      .filter(e => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > window.innerWidth + 1; })
      .map(e => e.id || e.className) })"""


def test_the_dashboard_fits_800_pixels_and_prints_every_panel_whole(chromium, dashboard_server):
    base, _ = dashboard_server
    OUTPUT.mkdir(exist_ok=True)
    url = f"{base}/cds-services/spine-pathway-order-sign"
    assert httpx.post(url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    refusals_written(base)  # the server writes what it refused every few seconds
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = analyst_at_800_pixels(browser, base)
        fits = page.evaluate(FITS)
        assert fits["page"] <= fits["view"] and fits["outside"] == [], fits  # nothing scrolls sideways
        assert rows(page, "traffic-refusals") == [["spine-pathway-order-sign", "415", "not-supported", "1"]]
        page.screenshot(path=str(OUTPUT / "dashboard-800.png"), full_page=True)

        # A4 landscape, 8 mm margins: 281 mm of width, about 1062 CSS pixels.
        page.set_viewport_size({"width": 1062, "height": 733})
        page.emulate_media(media="print")
        page.evaluate("() => Object.values(Chart.instances).forEach(c => c.resize())")
        fits = page.evaluate(FITS)
        assert fits["outside"] == [], fits
        ticks = page.evaluate("() => Chart.getChart('component-chart').scales.y.ticks.length")
        assert ticks == len(chart_data(page, "component-chart")["labels"]) == 9  # every component named
        pdf = page.pdf(format="A4", landscape=True, print_background=True)
        assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1
        bottom = page.evaluate("() => Math.max(...[...document.querySelectorAll('figure, .tables > div')]"
                               ".filter(e => e.offsetParent !== null).map(e => e.getBoundingClientRect().bottom))")
        assert bottom <= 733, "every printed panel is on the page, whole"
        page.screenshot(path=str(OUTPUT / "dashboard-print-a4.png"), full_page=True)
        browser.close()


def refusals_written(base: str) -> None:
    """Waits until the server has written the requests it refused (it does every FLUSH_SECONDS)."""
    deadline = time.monotonic() + FLUSH_SECONDS + PATIENCE
    while not httpx.get(f"{base}/audit/summary", headers={"Authorization": f"Bearer {KEY}"}
                        ).json()["traffic"]["refusals"]:
        assert time.monotonic() < deadline, "the refused request was never written"
        time.sleep(0.2)


def analyst_at_800_pixels(browser: Browser, base: str) -> Page:
    """A page of the dashboard at `base`, 800 px wide, signed in as an analyst and loaded."""
    page = browser.new_page(viewport={"width": 800, "height": 1000})
    page.goto(f"{base}/dashboard/sign-in")
    page.fill("#key", KEY)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-loaded=true]", timeout=PATIENCE * 1000)
    return page


@contextmanager
def signed_in(chromium: str, database: str, tmp_path) -> Iterator[Page]:
    """The dashboard over `database`, served as `make run` serves it, signed in as an analyst at 800 px."""
    with serving(tmp_path, CDS_SPINE_DATABASE_URL=database, CDS_SPINE_AUDIT_USERS=AUDIT_USERS_ENV) as base, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield analyst_at_800_pixels(browser, base)
        browser.close()


def test_every_override_reason_is_named_at_800_pixels_and_on_a4(chromium, make_client, tmp_path):
    """Issue 34, point 11: with six reasons the chart labelled three (Chart.js skips ticks that do not fit)."""
    database = f"sqlite:///{tmp_path / 'reasons.db'}"
    client = make_client(database_url=database, **audit_settings())
    feedback = []
    for index in range(6):  # six cards, each overridden for another of the reasons its card offers
        [card] = call(client, ORDER_SIGN, hook_request("order-sign")).json()["cards"]
        reason = card["overrideReasons"][index]
        feedback.append({"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": "2026-11-01T10:00:00Z",
                         "overrideReason": {"reason": {"system": reason["system"], "code": reason["code"]}}})
    assert client.post(f"/cds-services/{ORDER_SIGN}/feedback", json={"feedback": feedback}).status_code == 200
    ticks = "() => Chart.getChart('reasons-chart').scales.y.ticks.length"
    with signed_in(chromium, database, tmp_path) as page:
        assert len(chart_data(page, "reasons-chart")["labels"]) == 6 == page.evaluate(ticks)
        page.set_viewport_size({"width": 1062, "height": 733})  # A4 landscape
        page.emulate_media(media="print")
        page.evaluate("() => Object.values(Chart.instances).forEach(c => c.resize())")
        assert page.evaluate(ticks) == 6


def test_a_wide_count_on_a_full_bar_is_never_cut(chromium, make_client, tmp_path):
    """Issue 34, point 11: "193/2": a count after a bar at 100 % ran past the canvas. 120 image-guided ESIs after
    therapy meet imaging guidance 120/120; its label must be inside the canvas."""
    database = f"sqlite:///{tmp_path / 'wide.db'}"
    client = make_client(database_url=database, **audit_settings())
    for _ in range(120):
        assert call(client, ORDER_SIGN, hook_request("order-sign")).status_code == 200
    with signed_in(chromium, database, tmp_path) as page:
        assert "120/120" in chart_data(page, "component-chart")["counts"][0]
        dark = page.evaluate("""() => { const chart = Chart.getChart("component-chart"), canvas = chart.canvas;
            const ratio = chart.currentDevicePixelRatio, width = canvas.width;
            const data = chart.ctx.getImageData(width - 3 * ratio, 0, 3 * ratio, canvas.height).data;
            let dark = 0;
            for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && data[i] < 120 && data[i + 2] < 120) dark += 1;
            return dark; }""")
        assert dark == 0, "a count runs past the chart's right edge"


def test_a_request_that_fails_says_so_and_never_passes_the_previous_numbers_off_as_the_filters(chromium,
                                                                                             dashboard_server):
    """A panel's request that fails (the store down, a proxy's timeout on a large bulk run) is named above the
    panels, which are dimmed: they still show the previous filters' numbers. The next load that works clears it."""
    base, _ = dashboard_server
    outcome = '{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient", ' \
              '"diagnostics": "the audit store is unavailable"}]}'
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = analyst_at_800_pixels(browser, base)
        assert page.text_content("#status") == ""
        assert page.evaluate("getComputedStyle(document.querySelector('main')).opacity") == "1"
        page.route("**/audit/summary?**", lambda route: route.fulfill(
            status=503, content_type="application/fhir+json", body=outcome))
        page.select_option("#kind", "surgery")
        page.click("#filters button[type=submit]")
        page.wait_for_selector("body[data-loaded=error]", timeout=PATIENCE * 1000)
        status = page.text_content("#status")
        assert "the audit store is unavailable" in status and "previous filters" in status
        assert float(page.evaluate("getComputedStyle(document.querySelector('main')).opacity")) < 1
        page.unroute("**/audit/summary?**")
        apply(page, kind="esi")
        assert page.text_content("#status") == ""
        assert page.evaluate("getComputedStyle(document.querySelector('main')).opacity") == "1"
        browser.close()
