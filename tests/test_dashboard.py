"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright, against a real server."""
from __future__ import annotations

import re
import shutil
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import sync_playwright

from cli import ROOT, serving
from reporting import KEY, populate

OUTPUT = ROOT / "test-output"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed; `make test` installs it (apt-get install chromium)",
                    pytrace=False)
    return path


@pytest.fixture
def dashboard_server(make_client, tmp_path):
    database = f"sqlite:///{tmp_path / 'dashboard.db'}"
    months = populate(make_client(database_url=database, audit_api_key=KEY))
    with serving(tmp_path, CDS_SPINE_DATABASE_URL=database, CDS_SPINE_AUDIT_API_KEY=KEY) as base:
        yield base, months


def painted_pixels(page, canvas_id: str) -> int:
    return page.evaluate("""(id) => {
        const canvas = document.getElementById(id);
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
        return painted;
    }""", canvas_id)


def test_dashboard_renders_the_fixture_numbers(chromium, dashboard_server):
    base, months = dashboard_server
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.goto(f"{base}/dashboard")
        assert page.url.endswith("/dashboard/sign-in")
        page.fill("#key", "wrong")
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard/sign-in?failed=1")
        page.wait_for_selector("#failed", state="visible")
        page.fill("#key", KEY)
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard")
        page.wait_for_selector("body[data-loaded=true]", timeout=15000)

        assert page.text_content("#tile-orders") == "4"
        assert page.text_content("#tile-adherence") == "50.0%"
        assert page.text_content("#tile-cards") == "3"
        assert page.text_content("#tile-override") == "66.7%"
        decisions = page.evaluate("Chart.getChart('decision-chart').data.datasets[0].data")
        assert decisions == [1, 2, 1]
        monthly = page.evaluate("""(() => { const c = Chart.getChart('adherence-chart');
            return {labels: c.data.labels, rates: c.data.datasets[0].data, orders: c.data.datasets[1].data}; })()""")
        assert monthly == {"labels": [months["last_month"].strftime("%Y-%m"), months["this_month"].strftime("%Y-%m")],
                           "rates": [0, 66.7], "orders": [1, 3]}
        reasons = page.evaluate("Chart.getChart('reasons-chart').data")
        assert [" ".join(label) for label in reasons["labels"]] == [
            "Conservative therapy done outside this record", "No reason given"]
        assert reasons["datasets"][0]["data"] == [1, 1]
        for canvas in ("adherence-chart", "decision-chart", "reasons-chart"):
            assert painted_pixels(page, canvas) > 500, canvas

        assert page.locator("#decisions tbody tr").count() == 6  # order-sign calls with orders
        page.locator("#decisions tbody tr", has_text="412").click()
        page.wait_for_selector("#detail:not([hidden])")
        assert "not evaluated" in page.text_content("#detail-body")
        csv_url = "a => a.pathname + a.search"  # the link as the browser resolves it against <base>
        assert page.eval_on_selector("#csv", csv_url) == "/audit/report?by=month&format=csv"
        page.select_option("#csv-by", "clinician")
        assert page.eval_on_selector("#csv", csv_url) == "/audit/report?by=clinician&format=csv"

        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
        browser.close()
    assert errors == []


def test_the_dashboard_works_under_a_proxy_path_prefix(make_client):
    """A proxy serves the service under /cds-spine and strips the prefix: every redirect, link, form and
    script URL the pages use must carry it."""
    client = make_client(audit_api_key=KEY, root_path="/cds-spine")
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
