"""Accountable access to the audit: named users with roles, by API key or OIDC token; every read recorded;
viewers never see plain patient ids; wrong credentials logged and rate-limited."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from cli import run_cli, serving
from reporting import AUDIT_USERS_ENV, KEY, VIEWER_KEY, audit_settings, populate
from sqlalchemy import select, update
from support import ORDER_SIGN, audit_store, call, hook_request
from tokens import SigningKey, claims, jwks, mint

from cds_spine.audit import tables
from cds_spine.audit.access import USER_LOCK_SECONDS, FailureLimiter, key_hash, named_user

AUTH = {"Authorization": f"Bearer {KEY}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_KEY}"}
PROTECTED = ["/audit/me", "/audit/measure", "/audit/summary", "/audit/report", "/audit/override-reasons",
             "/audit/override-comments", "/audit/decisions", "/audit/measure-report?start=2026-01-01&end=2026-01-31",
             "/audit/access-log"]


@pytest.mark.parametrize("path", PROTECTED + ["/dashboard", "/dashboard/sign-in", "/dashboard/static/dashboard.js"])
def test_without_configured_users_everything_audit_is_404(make_client, path):
    client = make_client()
    response = client.get(path, headers=AUTH)
    assert response.status_code == 404
    assert "CDS_SPINE_AUDIT_USERS" in response.text  # issue 34: a newcomer is told how to turn it on


@pytest.mark.parametrize("path", PROTECTED)
def test_missing_or_wrong_key_is_401(make_client, path):
    client = make_client(**audit_settings())
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, headers=AUTH).status_code == 200


def test_ehr_tokens_do_not_open_the_audit(make_client):
    client = make_client(**audit_settings())
    call(client, ORDER_SIGN, hook_request("order-sign"))
    assert client.get("/audit/decisions", headers={"Authorization": "Bearer some-ehr-jwt"}).status_code == 401


def test_dashboard_sign_in_keeps_a_session_cookie_naming_the_user(make_client):
    client = make_client(**audit_settings())
    page = client.get("/dashboard", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/dashboard/sign-in")
    wrong = client.post("/dashboard/sign-in", data={"key": "nope"}, follow_redirects=False)
    assert wrong.headers["location"] == "/dashboard/sign-in?failed=1"
    right = client.post("/dashboard/sign-in", data={"key": VIEWER_KEY}, follow_redirects=False)
    assert right.headers["location"] == "/dashboard"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and VIEWER_KEY not in cookie
    assert client.get("/audit/me").json()["name"] == "vic.viewer"  # the cookie opens the JSON endpoints
    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 200 and "default-src 'self'" in dashboard.headers["content-security-policy"]
    client.post("/dashboard/sign-out")
    assert client.get("/audit/summary").status_code == 401


@pytest.mark.parametrize("cookie", ["9999999999.deadbeef", "9999999999.YW5hLmFuYWx5c3Q.analyst.00", "x", "..."])
def test_forged_session_cookies_are_refused(make_client, cookie):
    client = make_client(**audit_settings())
    client.cookies.set("cds_spine_audit_session", cookie)
    assert client.get("/audit/summary").status_code == 401


def test_a_session_ends_when_its_user_is_removed(make_client, tmp_path):
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    first = make_client(database_url=database, **audit_settings())
    first.post("/dashboard/sign-in", data={"key": VIEWER_KEY})
    cookie = first.cookies.get("cds_spine_audit_session")
    analyst_only = [user for user in audit_settings()["audit_users"] if user["role"] == "analyst"]
    second = make_client(database_url=database, audit_users=analyst_only)
    second.cookies.set("cds_spine_audit_session", cookie)
    assert second.get("/audit/me").status_code == 401
    third = make_client(database_url=database, **audit_settings())  # the same store: the same sessions
    third.cookies.set("cds_spine_audit_session", cookie)
    assert third.get("/audit/me").json() == {**third.get("/audit/me").json(), "name": "vic.viewer", "role": "viewer"}


def signed_in(client, key: str = VIEWER_KEY) -> str:
    assert client.post("/dashboard/sign-in", data={"key": key}, follow_redirects=False).status_code == 303
    return client.cookies.get("cds_spine_audit_session")


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(make_client):
    """Issue 32, M6: a copy of the cookie taken before sign-out no longer opens the audit."""
    client = make_client(**audit_settings())
    cookie = signed_in(client)
    client.post("/dashboard/sign-out")
    client.cookies.set("cds_spine_audit_session", cookie)
    assert client.get("/audit/me").status_code == 401


def test_rotating_a_users_key_ends_the_sessions_opened_with_the_old_one(make_client, tmp_path):
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    first = make_client(database_url=database, **audit_settings())
    cookie = signed_in(first)
    rotated = [{**user, "key_sha256": key_hash("a-new-key-for-vic-0123456789")} if user["name"] == "vic.viewer"
               else user for user in audit_settings()["audit_users"]]
    second = make_client(database_url=database, audit_users=rotated)
    second.cookies.set("cds_spine_audit_session", cookie)
    assert second.get("/audit/me").status_code == 401


def test_a_session_ends_after_eight_hours_whatever_its_row_says(make_client):
    client = make_client(**audit_settings())
    cookie = signed_in(client)
    with audit_store(client).engine.begin() as connection:  # a row tampered with: expiry in year 5138
        connection.execute(update(tables.dashboard_sessions).values(
            created_at=time.time() - 8 * 3600 - 1, expires_at=datetime(5138, 1, 1, tzinfo=UTC).timestamp()))
    client.cookies.set("cds_spine_audit_session", cookie)
    assert client.get("/audit/me").status_code == 401


def test_the_database_holds_nothing_to_make_a_session_or_open_a_timeline_cookie(make_client):
    """Who can read the audit database finds no signing or sealing key, and the sessions only as hashes."""
    client = make_client(**audit_settings())
    cookie = signed_in(client)
    with audit_store(client).engine.connect() as connection:
        keys = [row.name for row in connection.execute(select(tables.store_keys))]
        [stored] = connection.execute(select(tables.dashboard_sessions)).all()
    assert set(keys) <= {"patient-hash-key"}  # CDS_SPINE_AUDIT_HASH_KEY unset: the store keeps that one only
    assert stored.token_sha256 != cookie and cookie not in str(tuple(stored))
    client.cookies.set("cds_spine_audit_session", stored.token_sha256)
    assert client.get("/audit/me").status_code == 401


def test_every_read_is_recorded_with_its_user(make_client):
    client = make_client(**audit_settings())
    populate(client)
    client.get("/audit/summary", params={"kind": "esi"}, headers=VIEWER)
    client.get("/audit/decisions", params={"decision": "met"}, headers=AUTH)
    client.post("/dashboard/sign-in", data={"key": VIEWER_KEY}, follow_redirects=False)
    client.get("/dashboard")
    client.cookies.clear()
    log = client.get("/audit/access-log", headers=AUTH).json()
    reads = [(item["user"], item["role"], item["method"], item["path"], item["query"]) for item in log["items"]]
    assert reads == [
        ("ana.analyst", "analyst", "GET", "/audit/access-log", ""),
        ("vic.viewer", "viewer", "GET", "/dashboard", ""),
        ("vic.viewer", "viewer", "POST", "/dashboard/sign-in", ""),
        ("ana.analyst", "analyst", "GET", "/audit/decisions", "decision=met"),
        ("vic.viewer", "viewer", "GET", "/audit/summary", "kind=esi"),
    ]
    assert log["total"] == 5
    assert client.get("/audit/access-log", params={"user": "vic.viewer"}, headers=AUTH).json()["total"] == 3
    refused = client.get("/audit/access-log", headers=VIEWER)
    assert refused.status_code == 403 and "analysts" in refused.json()["issue"][0]["diagnostics"]
    assert client.get("/audit/access-log", params={"user": "vic.viewer"}, headers=AUTH).json()["total"] == 4


def test_a_viewer_never_sees_plain_patient_ids(make_client):
    client = make_client(audit_plain_patient_ids=True, **audit_settings())
    call(client, ORDER_SIGN, hook_request("order-sign"))
    hashed = audit_store(client).patient_hasher("p1")
    as_analyst = client.get("/audit/decisions", headers=AUTH).json()["items"][0]
    as_viewer = client.get("/audit/decisions", headers=VIEWER).json()["items"][0]
    assert as_analyst["patient"] == "p1"
    assert as_viewer["patient"] == hashed != "p1"
    detail = client.get(f"/audit/decisions/{as_viewer['id']}", headers=VIEWER)
    assert detail.json()["patient"] == hashed and "p1" not in json.dumps(detail.json()["patient"])
    assert client.get(f"/audit/decisions/{as_viewer['id']}", headers=AUTH).json()["patient"] == "p1"


def test_wrong_credentials_are_logged_and_rate_limited_and_valid_ones_still_pass(make_client, caplog):
    """Issue 32, L11: past the address's limit a guesser gets 429, while a colleague behind the same address
    (a hospital NAT) with a valid key, or a session opened earlier, still reads the audit."""
    client = make_client(audit_max_failures_per_minute=3, **audit_settings())
    assert client.post("/dashboard/sign-in", data={"key": KEY}, follow_redirects=False).status_code == 303
    for attempt in range(3):
        assert client.get("/audit/summary", headers={"Authorization": f"Bearer guess-{attempt}"}).status_code == 401
    limited = client.get("/audit/summary", headers={"Authorization": "Bearer guess-3"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert limited.json()["issue"][0]["code"] == "throttled"
    paused = client.post("/dashboard/sign-in", data={"key": "guess-4"}, follow_redirects=False)
    assert paused.status_code == 303 and paused.headers["location"].startswith("/dashboard/sign-in?wait=")
    assert client.get("/audit/summary", headers=AUTH).status_code == 200
    assert client.get("/dashboard", follow_redirects=False).status_code == 200  # the session opened before
    assert client.post("/dashboard/sign-in", data={"key": KEY}, follow_redirects=False).status_code == 303
    refusals = [r.getMessage() for r in caplog.records if "audit credentials refused" in r.getMessage()]
    assert len(refusals) == 5 and "unknown API key" in refusals[0]
    assert not any("guess-" in r.getMessage() for r in caplog.records)


NAMED_KEY = "ana.analyst.Zm9yLXRlc3RzLW9ubHktMDEyMzQ1Njc4OWFiY2RlZg"
NAMED_VIEWER_KEY = "vic.viewer.dGhlLXZpZXdlcnMtdGVzdC1rZXktMDEyMzQ1Njc4OQ"
NAMED_USERS = [{"name": "ana.analyst", "role": "analyst", "key_sha256": key_hash(NAMED_KEY)},
               {"name": "vic.viewer", "role": "viewer", "key_sha256": key_hash(NAMED_VIEWER_KEY)}]


def test_wrong_keys_naming_a_user_lock_that_user_only(make_client, caplog):
    """Issue 32: a per-user lockout beside the per-address one. A guesser spread over many addresses (here the
    address limit is out of reach) locks the user its keys name, the right key included, while every other user
    works; a name nobody has locks the same way, so a lock tells no one which names exist."""
    client = make_client(audit_users=NAMED_USERS, audit_max_failures_per_user=3, audit_max_failures_per_minute=100)
    assert client.post("/dashboard/sign-in", data={"key": NAMED_KEY}, follow_redirects=False).status_code == 303
    for attempt in range(3):
        guess = {"Authorization": f"Bearer ana.analyst.guess{attempt}"}
        assert client.get("/audit/summary", headers=guess).status_code == 401
    locked = client.get("/audit/summary", headers={"Authorization": f"Bearer {NAMED_KEY}"})
    assert locked.status_code == 429 and 0 < int(locked.headers["retry-after"]) <= USER_LOCK_SECONDS + 1
    assert "for this user" in locked.json()["issue"][0]["diagnostics"]
    paused = client.post("/dashboard/sign-in", data={"key": NAMED_KEY}, follow_redirects=False)
    wait = int(paused.headers["location"].rsplit("wait=", 1)[1])  # the page says how long (the API: 429)
    assert paused.status_code == 303 and 0 < wait <= USER_LOCK_SECONDS + 1
    assert client.get("/dashboard", follow_redirects=False).status_code == 200  # the session opened before
    assert client.get("/audit/me", headers={"Authorization": f"Bearer {NAMED_VIEWER_KEY}"}).status_code == 200
    for attempt in range(3):
        assert client.get("/audit/me", headers={"Authorization": f"Bearer no.such.user.guess{attempt}"}
                          ).status_code == 401
    assert client.get("/audit/me", headers={"Authorization": "Bearer no.such.user.guess3"}).status_code == 429
    locks = [r.fields["user"] for r in caplog.records if getattr(r, "fields", {}).get("event") == "audit-user-locked"]
    assert locks == ["ana.analyst", "ana.analyst", "no.such.user"]
    assert not any("guess" in r.getMessage() or NAMED_KEY in r.getMessage() for r in caplog.records)


def test_a_user_lock_ends_with_its_window_and_names_only_plain_names():
    now = [1000.0]
    limiter = FailureLimiter(2, USER_LOCK_SECONDS, clock=lambda: now[0])
    limiter.failed("ana.analyst")
    limiter.failed("ana.analyst")
    assert limiter.retry_after("ana.analyst") == USER_LOCK_SECONDS + 1
    now[0] += USER_LOCK_SECONDS
    assert limiter.retry_after("ana.analyst") is None
    assert named_user("analyst-key-for-tests-0123456789") is None  # a key made before keys named their user
    assert named_user("evil\r\nline.secret") is None and named_user(".secret") is None
    assert named_user("ana.analyst.") is None and named_user("jo@x.org.abc") == "jo@x.org"


@pytest.mark.slow  # runs the command line in a process of its own
def test_audit_key_command_makes_a_user_entry_that_signs_in(make_client):
    from cli import run_cli

    result = run_cli("audit-key", "quinn.quality", "analyst")
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[0].rsplit(" ", 1)[1]
    entry = json.loads(result.stdout.splitlines()[1].split(": ", 1)[1])
    assert entry["name"] == "quinn.quality" and key not in result.stdout.splitlines()[1]
    assert key.startswith("quinn.quality.") and named_user(key) == "quinn.quality"  # the per-user limit counts by it
    client = make_client(audit_users=[entry])
    assert client.get("/audit/me", headers={"Authorization": f"Bearer {key}"}).json()["role"] == "analyst"
    assert run_cli("audit-key", "quinn", "boss").returncode == 2


# --- OIDC ----------------------------------------------------------------------------------------------

ISSUER = "https://login.example.org/realms/health"
AUDIENCE = "cds-spine-audit"


@pytest.fixture
def oidc(make_client, tmp_path):
    key = SigningKey.rsa("idp-1", "RS256")
    (tmp_path / "idp-jwks.json").write_text(json.dumps(jwks(key)))
    client = make_client(audit_auth="oidc", audit_oidc_issuer=ISSUER, audit_oidc_audience=AUDIENCE,
                         audit_oidc_jwks_file=tmp_path / "idp-jwks.json")

    def token(signer: SigningKey = key, audience: str = AUDIENCE, **extra) -> str:
        return mint(signer, claims(ISSUER, audience, **extra))

    return client, token


def test_oidc_tokens_name_the_user_and_grant_the_role(oidc):
    client, token = oidc
    viewer_token = token(preferred_username="vic", roles=["cds-spine-viewer"])
    viewer = client.get("/audit/me", headers={"Authorization": f"Bearer {viewer_token}"})
    assert (viewer.json()["name"], viewer.json()["role"]) == ("vic", "viewer")
    analyst = token(sub="u-42", roles=["other", "cds-spine-analyst"])
    assert client.get("/audit/me", headers={"Authorization": f"Bearer {analyst}"}).json()["name"] == "u-42"
    signed_in = client.post("/dashboard/sign-in", data={"key": analyst}, follow_redirects=False)
    assert signed_in.headers["location"] == "/dashboard"
    assert client.get("/audit/me").json()["role"] == "analyst"


def test_oidc_refuses_wrong_tokens_and_roleless_users(oidc):
    client, token = oidc
    stranger = SigningKey.rsa("idp-1", "RS256")
    cases = {
        token(signer=stranger, roles=["cds-spine-analyst"]): 401,
        token(audience="another-app", roles=["cds-spine-analyst"]): 401,
        token(lifetime=-120, roles=["cds-spine-analyst"]): 401,
        token(preferred_username="eve"): 403,
        "not-a-jwt": 401,
    }
    for credential, status in cases.items():
        assert client.get("/audit/me", headers={"Authorization": f"Bearer {credential}"}).status_code == status


@pytest.mark.slow
def test_a_client_cannot_rotate_its_own_forwarded_address_past_the_limit(tmp_path):
    """Behind the ingress (here: this test, at 127.0.0.1, which appends the address it saw), a client that
    sends its own X-Forwarded-For, a new one each time, is still counted by the address the ingress saw."""
    settings = {"CDS_SPINE_AUDIT_USERS": AUDIT_USERS_ENV, "CDS_SPINE_AUDIT_MAX_FAILURES_PER_MINUTE": "3",
                "CDS_SPINE_FORWARDED_ALLOW_IPS": "127.0.0.1", "CDS_SPINE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    with serving(**settings) as base:
        statuses = [httpx.get(f"{base}/audit/summary", headers={
            "Authorization": f"Bearer guess-{attempt}", "X-Forwarded-For": f"198.51.100.{attempt}, 203.0.113.7"}
        ).status_code for attempt in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


@pytest.mark.slow
@pytest.mark.slow  # runs the command line in a process of its own
def test_trusting_every_proxy_is_refused_at_start(tmp_path):
    result = run_cli("check-config", CDS_SPINE_FORWARDED_ALLOW_IPS="*",
                     CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}")
    assert result.returncode == 2 and "CDS_SPINE_FORWARDED_ALLOW_IPS" in result.stderr
    assert "any client choose its own address" in result.stderr
