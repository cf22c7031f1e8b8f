"""The pathway timeline, a SMART app: launched from a card through a full EHR launch (an authorization server
and a FHIR server the tests own, tests/smart_ehr.py), in a real browser (Debian's chromium through
Playwright). The page shows what the card said, from the same assessment; the PKCE verifier is checked, the
token goes to the FHIR server only, and every problem is a page that says what to do."""
from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest
import scenarios.build as scenario_build
from browser import CHROMIUM_FLAGS
from cli import PATIENCE, ROOT
from live import free_socket, served
from playwright.sync_api import Page, sync_playwright
from real_records import export, order, patient, request
from smart_ehr import CLIENT_ID, OwnEhr, ehr_app

from cds_spine.app import create_app
from cds_spine.settings import Settings
from cds_spine.smart.oauth import LaunchProblem, discover

SCENARIOS = Path(__file__).parent / "scenarios"
OUTPUT = ROOT / "test-output"
ORDER_SIGN = "/cds-services/spine-pathway-order-sign"
PATIENT_VIEW = "/cds-services/spine-pathway-patient-view"
DATES = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass
class Setup:
    service: str
    ehr: OwnEhr
    database: Path


@contextmanager
def running(tmp_path: Path, migrated_store: Path, knowledge, clock=None, **settings) -> Iterator[Setup]:
    """The service under uvicorn, with the pathway timeline on and the test EHR's FHIR server trusted."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    database = tmp_path / "audit.db"
    database.write_bytes(migrated_store.read_bytes())
    sock = free_socket()
    service = f"http://127.0.0.1:{sock.getsockname()[1]}"
    ehr = OwnEhr(redirect_uri=f"{service}/app/callback")
    with served(ehr_app(ehr)) as ehr_base:
        ehr.base = ehr_base
        config = {"database_url": f"sqlite:///{database}", "public_base_url": service, "smart_client_id": CLIENT_ID,
                  "smart_fhir_servers": (ehr.fhir_base,), **settings}
        app = create_app(Settings(**config), knowledge, **({"clock": clock} if clock else {}))
        with served(app, sock):
            yield Setup(service, ehr, database)


def card_and_launch(setup: Setup, body: dict, service_path: str, patient_id: str, resources: list[dict]) -> tuple[dict, str]:
    """The card the service answers, and the URL an EHR opens for its smart link (with iss and launch)."""
    response = httpx.post(f"{setup.service}{service_path}", json=body, timeout=30)
    assert response.status_code == 200, response.text
    [card] = response.json()["cards"]
    [link] = [link for link in card["links"] if link["type"] == "smart"]
    launch = setup.ehr.launch(patient_id, resources, link.get("appContext"))
    return card, f"{link['url']}?iss={quote(setup.ehr.fhir_base, safe='')}&launch={launch}"


def scenario(name: str, setup: Setup, hook: str | None = None) -> tuple[dict, str, list[dict]]:
    """A scenario's request (prefetch keys from the service's discovery), its patient and its resources (dates
    resolved); `hook` asks another hook for the same record."""
    story = json.loads((SCENARIOS / f"{name}.json").read_text())
    story["hook"] = hook or story["hook"]
    today = datetime.now(UTC).date()
    resolved = scenario_build.expand_dates(story, today)
    resources = [resolved["patient"], *(r for kind in resolved["record"].values() if isinstance(kind, list) for r in kind)]
    keys = scenario_build.keys_from_discovery(httpx.get(f"{setup.service}/cds-services").json(), story["hook"])
    return scenario_build.build_request(story, keys, today=today), resolved["patient"]["id"], resources


def texts(page: Page, selector: str) -> list[str]:
    return [" ".join(text.split()) for text in page.locator(selector).all_inner_texts()]


def open_timeline(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_url(re.compile(r".*/app/timeline\?launch=[\w-]+$"))


def test_from_an_order_card_the_timeline_shows_the_cards_days_items_and_decision(
        chromium, tmp_path, migrated_store, knowledge, caplog):
    caplog.set_level(logging.INFO)
    with running(tmp_path, migrated_store, knowledge) as setup, sync_playwright() as playwright:
        body, patient_id, resources = scenario("p03-esi-short-nsaid", setup)
        card, url = card_and_launch(setup, body, ORDER_SIGN, patient_id, resources)
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        fetched: list[str] = []
        page.on("request", lambda request: fetched.append(request.url))
        open_timeline(page, url)
        assert page.locator("script").count() == 0
        assert all(u.startswith((setup.service, setup.ehr.base)) for u in fetched)  # nothing from another host
        page.keyboard.press("Tab")  # the first stop skips to the table of the same facts
        assert page.evaluate("document.activeElement.textContent") == "Skip to the table of facts"
        page.keyboard.press("Enter")
        assert page.url.endswith("#facts")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "smart-timeline.png"), full_page=True)
        statements = texts(page, "#statements li")
        assert statements[0] == card["summary"]  # the card's lead, word for word
        assert set(statements[1:]) <= {line.lstrip("- ") for line in card["detail"].splitlines()} | set()
        [episode_line] = [line for line in card["detail"].splitlines() if line.startswith("Longest continuous episode")]
        days = re.search(r"(\d+) days?", episode_line).group(1)
        assert page.inner_text("#episode").startswith(f"Longest episode: {days} day")
        assert DATES.findall(page.inner_text("#episode")) == DATES.findall(episode_line)
        counted = [row for row in texts(page, "#therapy tbody tr") if row.endswith("counted") and "not counted" not in row]
        assert counted and all(any(date in card["detail"] for date in DATES.findall(row)) for row in counted)
        threshold = texts(page, "#thresholds tbody tr")[0]  # 11 days: the 28 are not reached, whatever the day
        assert threshold.startswith("lumbar ESI: 28 days")
        assert re.search(r"would be reached on \d{4}-\d{2}-\d{2}, if the therapy goes on|not reached: the longest "
                         r"episode ended on", threshold), threshold
        diagnoses = texts(page, "#diagnoses li")
        assert diagnoses and all("(lumbar)" in d for d in diagnoses)
        browser.close()
    assert setup.ehr.pkce_verified == 1
    [scope] = setup.ehr.scopes
    assert scope.split() == ["launch", *(f"patient/{t}.rs" for t in (
        "Condition", "DiagnosticReport", "Encounter", "ImagingStudy", "Medication", "MedicationRequest",
        "MedicationStatement", "Observation", "Procedure", "ServiceRequest"))]
    carried = [(path, authorization) for _, path, authorization in setup.ehr.received if authorization]
    assert carried and all(path.startswith("/fhir/") and path != "/fhir/.well-known/smart-configuration"
                           for path, _ in carried)
    [token] = {authorization.removeprefix("Bearer ") for _, authorization in carried}
    assert token not in caplog.text and token.encode() not in setup.database.read_bytes()
    assert patient_id not in caplog.text


def test_from_a_patient_view_card_the_timeline_shows_where_each_step_stands(chromium, tmp_path, migrated_store,
                                                                             knowledge):
    with running(tmp_path, migrated_store, knowledge) as setup, sync_playwright() as playwright:
        body, patient_id, resources = scenario("p05-esi-fifth-in-a-year", setup, hook="patient-view")
        card, url = card_and_launch(setup, body, PATIENT_VIEW, patient_id, resources)
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 420, "height": 900})  # a narrow EHR sidebar
        open_timeline(page, url)
        page.screenshot(path=str(OUTPUT / "smart-timeline-narrow.png"), full_page=True)
        statements = texts(page, "#statements li")
        assert len(statements) == 3 and all(line in card["detail"] for line in statements)
        injections = texts(page, "#injections tbody tr")
        assert len(injections) == 4 and all(row.startswith("lumbar") for row in injections)
        assert page.evaluate("document.documentElement.scrollWidth") <= 420  # nothing wider than the sidebar
        page.emulate_media(media="print")
        assert page.locator(".skip").is_hidden()
        browser.close()


def test_a_synthea_patient_reads_the_same_on_the_card_and_the_timeline(chromium, tmp_path, migrated_store,
                                                                          knowledge):
    """A real-shaped record (Synthea: a year of ibuprofen for chronic low back pain) as of a past day."""
    pid, resources = patient("b9a63e7c")
    body = request(pid, resources, order("64483"))
    medications = list(export()[1].values())
    everything = [r for kind in resources.values() for r in kind] + medications
    day = datetime(2025, 6, 1, 12, tzinfo=UTC)
    with running(tmp_path, migrated_store, knowledge, clock=lambda: day) as setup, sync_playwright() as playwright:
        card, url = card_and_launch(setup, body, ORDER_SIGN, pid, everything)
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        open_timeline(page, url)
        assert texts(page, "#statements li")[0] == card["summary"]
        [episode_line] = [line for line in card["detail"].splitlines() if line.startswith("Longest continuous episode")]
        assert DATES.findall(page.inner_text("#episode")) == DATES.findall(episode_line)
        assert any("Recorded: pain 3/10 on 2025-04-17" in line for line in card["detail"].splitlines())
        assert ["pain", "3/10", "2025-04-17"] in [row.split(" ", 2) for row in texts(page, "#scores tbody tr")] or \
            "pain 3/10 2025-04-17" in texts(page, "#scores tbody tr")
        browser.close()


def get(url: str, cookies: httpx.Cookies | None = None) -> httpx.Response:
    return httpx.get(url, cookies=cookies, follow_redirects=False, timeout=10)


@contextmanager
def browsing() -> Iterator[httpx.Client]:
    """A client that follows redirects and keeps cookies, as a browser does."""
    with httpx.Client(follow_redirects=True, timeout=20) as client:
        yield client


def test_every_problem_is_a_page_that_says_what_to_do(tmp_path, migrated_store, knowledge):
    with running(tmp_path, migrated_store, knowledge) as setup:
        body, patient_id, resources = scenario("p03-esi-short-nsaid", setup)
        _, url = card_and_launch(setup, body, ORDER_SIGN, patient_id, resources)
        untrusted = get(f"{setup.service}/app/launch?iss={quote('https://fhir.elsewhere.example/r4')}&launch=x")
        assert untrusted.status_code == 403 and "This FHIR server is not trusted" in untrusted.text
        no_iss = get(f"{setup.service}/app/launch")
        assert no_iss.status_code == 400 and "Open the pathway timeline from the EHR" in no_iss.text
        ended = get(f"{setup.service}/app/timeline")
        assert ended.status_code == 401 and "Your session with the EHR has ended" in ended.text
        forged = get(f"{setup.service}/app/callback?code=abc&state=xyz")
        assert forged.status_code == 403 and "This launch has expired" in forged.text

        with browsing() as browser:
            shown = browser.get(url)
            assert shown.status_code == 200 and "/app/timeline?launch=" in str(shown.url)
            setup.ehr.revoke_tokens()  # the token expired or was revoked at the EHR
            refused = browser.get(str(shown.url))
            assert refused.status_code == 401 and "The EHR refused the app&#39;s access" in refused.text

            setup.ehr.refuse_authorization = True
            denied = browser.get(url.split("&launch=")[0] + "&launch=" + setup.ehr.launch(patient_id, resources))
            assert denied.status_code == 403 and "The EHR refused access" in denied.text
            assert "access_denied" in denied.text
            setup.ehr.refuse_authorization = False

            nothing = setup.ehr.launch("no-spine", [{"resourceType": "Condition", "id": "c", "subject": {
                "reference": "Patient/no-spine"}, "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                                       "code": "E11.9"}]}}])
            empty = browser.get(f"{setup.service}/app/launch?iss={quote(setup.ehr.fhir_base)}&launch={nothing}")
            assert empty.status_code == 200 and "No spine diagnosis on record for this patient" in empty.text
    with running(tmp_path / "off", migrated_store, knowledge, smart_client_id=None) as setup:
        off = get(f"{setup.service}/app/launch?iss={quote(setup.ehr.fhir_base)}&launch=x")
        assert off.status_code == 404 and "CDS_SPINE_SMART_CLIENT_ID" in off.text


def test_a_card_link_opened_in_another_patients_chart_is_refused(tmp_path, migrated_store, knowledge):
    """Issue 32, L6: the card's appContext names its patient; a token for another patient with that appContext
    (the link copied into another chart) shows nothing of what the card said on the wrong record."""
    with running(tmp_path, migrated_store, knowledge) as setup:
        body, patient_id, resources = scenario("p03-esi-short-nsaid", setup)
        _, other, other_resources = scenario("p01-esi-nothing-tried", setup)
        response = httpx.post(f"{setup.service}{ORDER_SIGN}", json=body, timeout=30)
        [link] = [link for link in response.json()["cards"][0]["links"] if link["type"] == "smart"]
        assert json.loads(link["appContext"])["patient"] == patient_id
        launch = setup.ehr.launch(other, other_resources, link["appContext"])
        with browsing() as browser:
            page = browser.get(f"{link['url']}?iss={quote(setup.ehr.fhir_base, safe='')}&launch={launch}")
        assert page.status_code == 403 and "This link was made for another patient" in page.text
        assert other not in page.text and patient_id not in page.text


def test_no_ones_text_is_shown_on_the_services_pages(tmp_path, migrated_store, knowledge):
    """Issue 32, L3: the callback's `error` and a launch's `iss` never put a stranger's words on a page."""
    with running(tmp_path, migrated_store, knowledge) as setup:
        words = "Call the help desk at 555-0100 and give your password"
        refused = get(f"{setup.service}/app/callback?error={quote(words)}")
        assert refused.status_code == 403 and "555-0100" not in refused.text
        assert "answered with an error" in refused.text
        named = get(f"{setup.service}/app/callback?error=access_denied")
        assert "answered access_denied" in named.text
        odd = get(f"{setup.service}/app/launch?iss={quote(words)}&launch=x")
        assert odd.status_code == 403 and "555-0100" not in odd.text


def test_an_expired_token_opens_nothing_and_the_configuration_is_asked_once(tmp_path, migrated_store, knowledge):
    """Issue 32, L2 and L11: expires_in 0 is no one-hour session; launches reuse the SMART configuration."""
    with running(tmp_path, migrated_store, knowledge) as setup:
        body, patient_id, resources = scenario("p03-esi-short-nsaid", setup)
        _, url = card_and_launch(setup, body, ORDER_SIGN, patient_id, resources)
        with browsing() as browser:
            assert browser.get(url).status_code == 200
            setup.ehr.token_seconds = 0
            _, again = card_and_launch(setup, body, ORDER_SIGN, patient_id, resources)
            expired = browser.get(again)
        assert expired.status_code == 403 and "already expired" in expired.text
        asked = [path for _, path, _ in setup.ehr.received if path.endswith("/.well-known/smart-configuration")]
        assert len(asked) == 1


@pytest.mark.parametrize("configuration, problem", [
    ({"code_challenge_methods_supported": []}, "must list S256"),
    ({"code_challenge_methods_supported": ["S256"], "token_endpoint": "http://127.0.0.1:9/internal"}, "only over https"),
])
def test_a_configuration_that_weakens_the_launch_is_refused(configuration, problem):
    """Issue 32, L2: no PKCE method listed, or an https server sending the code to a plain-http endpoint."""
    answer = {"authorization_endpoint": "https://ehr.example.org/authorize",
              "token_endpoint": "https://ehr.example.org/token", **configuration}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=answer))

    async def launch() -> None:
        async with httpx.AsyncClient(transport=transport) as http:
            await discover(http, "https://ehr.example.org/fhir")
    with pytest.raises(LaunchProblem, match=problem):
        asyncio.run(launch())


def test_a_server_with_only_v1_scopes_is_asked_for_read_scopes(tmp_path, migrated_store, knowledge):
    with running(tmp_path, migrated_store, knowledge) as setup:
        body, patient_id, resources = scenario("p03-esi-short-nsaid", setup)
        setup.ehr.v1_only = True
        _, url = card_and_launch(setup, body, ORDER_SIGN, patient_id, resources)
        with browsing() as browser:
            assert browser.get(url).status_code == 200
        [scope] = setup.ehr.scopes
        assert "patient/Condition.read" in scope.split() and not any(s.endswith(".rs") for s in scope.split())


def test_a_standalone_launch_asks_for_the_patient_and_shows_where_the_pathway_stands(tmp_path, migrated_store,
                                                                                     knowledge):
    """Launched from the EHR's app list rather than a card: no launch parameter, the patient picked at the EHR."""
    with running(tmp_path, migrated_store, knowledge) as setup:
        body, patient_id, resources = scenario("p03-esi-short-nsaid", setup)
        setup.ehr.launch(patient_id, resources)
        setup.ehr.standalone_patient = patient_id
        with browsing() as browser:
            page = browser.get(f"{setup.service}/app/launch?iss={quote(setup.ehr.fhir_base, safe='')}")
        assert page.status_code == 200 and "Where the pathway stands" in page.text and "ESI: needs 17 more days" in page.text
        [scope] = setup.ehr.scopes
        assert scope.split()[0] == "launch/patient"


def test_behind_tls_the_cookies_work_in_the_ehrs_frame(tmp_path, migrated_store, knowledge):
    """An EHR shows the app in a frame of its own site: the cookies must be SameSite=None, Secure and
    Partitioned to be sent there; always HttpOnly, for /app only, and sealed (the verifier is not in them)."""
    with running(tmp_path, migrated_store, knowledge) as setup:
        body, patient_id, resources = scenario("p03-esi-short-nsaid", setup)
        _, url = card_and_launch(setup, body, ORDER_SIGN, patient_id, resources)
        response = httpx.get(url, headers={"X-Forwarded-Proto": "https"}, follow_redirects=False)
        assert response.status_code == 302 and response.headers["location"].startswith(f"{setup.ehr.base}/auth/authorize?")
        cookie = response.headers["set-cookie"]
        assert {"Secure", "HttpOnly", "Partitioned", "Path=/app", "SameSite=none"} <= {part.strip() for part in cookie.split(";")}
        challenge = dict(httpx.URL(response.headers["location"]).params)["code_challenge"]
        assert challenge not in cookie


@pytest.mark.parametrize("iss", ["not a url", "ftp://ehr.example/fhir", "https://user:pw@ehr.example/fhir"])
def test_a_launch_naming_no_usable_server_is_refused_with_a_page(tmp_path, migrated_store, knowledge, iss):
    with running(tmp_path, migrated_store, knowledge) as setup:
        response = get(f"{setup.service}/app/launch?iss={quote(iss)}&launch=x")
        assert response.status_code == 403 and "This FHIR server is not trusted" in response.text


def test_a_page_opened_for_one_patient_never_shows_the_patient_of_a_later_launch(tmp_path, migrated_store, knowledge):
    """Launch A, then B in the same browser, reload A's page: it says it belongs to an earlier launch, never shows B;
    every page names its patient (the banner) unless the EHR says it shows the patient itself."""
    with running(tmp_path, migrated_store, knowledge) as setup:
        body_a, patient_a, resources_a = scenario("p03-esi-short-nsaid", setup)
        body_b, patient_b, resources_b = scenario("p01-esi-nothing-tried", setup)
        _, url_a = card_and_launch(setup, body_a, ORDER_SIGN, patient_a, resources_a)
        _, url_b = card_and_launch(setup, body_b, ORDER_SIGN, patient_b, resources_b)
        with browsing() as browser:
            page_a = browser.get(url_a)
            assert page_a.status_code == 200 and f"id {patient_a}" in page_a.text and patient_b not in page_a.text
            assert f"born {resources_a[0]['birthDate']}" in page_a.text
            page_b = browser.get(url_b)
            assert page_b.status_code == 200 and f"id {patient_b}" in page_b.text
            reloaded_a = browser.get(str(page_a.url))
            assert reloaded_a.status_code == 409 and "This page belongs to an earlier launch" in reloaded_a.text
            assert patient_b not in reloaded_a.text
            assert browser.get(str(page_b.url)).status_code == 200
            without = browser.get(f"{setup.service}/app/timeline")
            assert without.status_code == 409
            setup.ehr.no_banner = True
            _, url_quiet = card_and_launch(setup, body_a, ORDER_SIGN, patient_a, resources_a)
            quiet = browser.get(url_quiet)
            assert quiet.status_code == 200 and 'id="patient"' not in quiet.text


def test_a_session_ends_when_the_clinician_ends_it_or_leaves_it_idle_and_a_copied_cookie_then_opens_nothing(
        tmp_path, migrated_store, knowledge):
    """Issue 32, L10: the sealed cookie alone was a 12-hour pass from any browser it was copied to. The page's
    End session ends it in the store (a copy made before opens nothing); a session unused past
    CDS_SPINE_SMART_IDLE_MINUTES ends too."""
    now = [datetime.now(UTC)]
    with running(tmp_path, migrated_store, knowledge, clock=lambda: now[0], smart_idle_minutes=15) as setup:
        body, patient_id, resources = scenario("p03-esi-short-nsaid", setup)
        with browsing() as browser:
            _, url = card_and_launch(setup, body, ORDER_SIGN, patient_id, resources)
            shown = browser.get(url)
            assert shown.status_code == 200 and "End session" in shown.text
            for _ in range(3):  # used every 14 minutes, it stays open
                now[0] += timedelta(minutes=14)
                assert browser.get(str(shown.url)).status_code == 200
            now[0] += timedelta(minutes=15, seconds=1)
            idle = browser.get(str(shown.url))
            assert idle.status_code == 401 and "left unused for 15 minutes" in idle.text
    with running(tmp_path / "ending", migrated_store, knowledge) as setup:
        body, patient_id, resources = scenario("p03-esi-short-nsaid", setup)
        with browsing() as browser:
            _, url = card_and_launch(setup, body, ORDER_SIGN, patient_id, resources)
            shown = browser.get(url)
            copied = httpx.Cookies(browser.cookies)
            launch = str(shown.url).split("launch=")[1]
            assert get(str(shown.url), copied).status_code == 200  # a copy works while the session is open
            assert browser.post(f"{setup.service}/app/end?launch=x").status_code == 409  # not this page's launch
            ended = browser.post(f"{setup.service}/app/end?launch={launch}")
            assert ended.status_code == 200 and "Session ended" in ended.text
            assert "cds_spine_smart_session" not in browser.cookies
            after = get(str(shown.url), copied)
            assert after.status_code == 401 and "Your session has ended" in after.text and patient_id not in after.text


def test_from_a_regenerative_injection_card_the_timeline_shows_what_that_card_said(tmp_path, migrated_store,
                                                                                    knowledge):
    """Issue 33, point 5: PRP's code is for any site, and only the order's link to the spine put it in the
    pathway; the card's link carries the region it placed the order in, so the timeline assesses the same order
    (it showed the patient-view standing, "ESI: criteria met", instead)."""
    with running(tmp_path, migrated_store, knowledge) as setup:
        body, patient_id, resources = scenario("p14-prp-before-esi", setup)
        card, url = card_and_launch(setup, body, ORDER_SIGN, patient_id, resources)
        assert json.loads(next(link for link in card["links"] if link["type"] == "smart")["appContext"])["region"]
        with browsing() as browser:
            page = browser.get(url)
        assert page.status_code == 200
        statements = re.findall(r"<li>(.*?)</li>", page.text.split('id="statements"')[1].split("</ul>")[0])
        assert statements[0] == card["summary"].replace("'", "&#39;")
        assert "PRP and cell-based spine injections are investigational" in page.text
        assert "criteria met" not in page.text


def test_the_example_ehr_launches_the_timeline_on_a_laptop(tmp_path, migrated_store, knowledge):
    """Issue 34, point 5: the timeline could not be seen without a real EHR. `make example-fhir` is a SMART
    example EHR: a standalone launch lets a person pick a patient; /launch starts an EHR launch with a card's
    appContext; both open the timeline. A FHIR server without SMART gets a page that says what to do."""
    port = free_socket()
    ehr_port = port.getsockname()[1]
    port.close()
    ehr = subprocess.Popen([sys.executable, "tools/example_fhir.py", "--port", str(ehr_port)], cwd=ROOT,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert ehr.stdout is not None and "example FHIR server" in ehr.stdout.readline()
        fhir = f"http://localhost:{ehr_port}/fhir"
        database = tmp_path / "audit.db"
        database.write_bytes(migrated_store.read_bytes())
        sock = free_socket()
        service = f"http://localhost:{sock.getsockname()[1]}"
        app = create_app(Settings(database_url=f"sqlite:///{database}", public_base_url=service,
                                  smart_client_id="cds-spine-timeline",
                                  smart_fhir_servers=(fhir, f"http://localhost:{ehr_port}/no-smart")), knowledge)
        with served(app, sock), browsing() as browser:
            picker = browser.get(f"{service}/app/launch?iss={quote(fhir, safe='')}")
            assert picker.status_code == 200 and "Example EHR: pick a patient" in picker.text
            link = re.search(r'href="([^"]*patient=pat-p03-esi-short-nsaid[^"]*)"', picker.text).group(1)
            page = browser.get(str(picker.url).split("?")[0] + html.unescape(link))
            assert page.status_code == 200 and "/app/timeline?launch=" in str(page.url)
            assert "pat-p03-esi-short-nsaid" in page.text and "Where the pathway stands" in page.text
            context = json.dumps({"hook": "order-sign", "patient": "pat-p03-esi-short-nsaid", "code": {
                "system": "http://www.ama-assn.org/go/cpt", "code": "64483"}, "region": "lumbar-sacral"})
            from_card = browser.get(f"http://localhost:{ehr_port}/launch?" + urlencode({
                "app": f"{service}/app/launch", "patient": "pat-p03-esi-short-nsaid", "appContext": context}))
            assert from_card.status_code == 200 and "lumbar ESI: what the card said" in from_card.text
            plain = browser.get(f"{service}/app/launch?iss={quote(f'http://localhost:{ehr_port}/no-smart', safe='')}")
            assert plain.status_code == 502 and "does not offer SMART App Launch" in plain.text
            assert "make example-fhir" in plain.text
    finally:
        ehr.terminate()
        ehr.communicate(timeout=PATIENCE)
