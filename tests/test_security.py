"""Checklist G49-G59: JWT verification with real keys, trusted clients, the sandbox profile, start-up policy."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import yaml
from cli import ROOT
from metrics_text import value
from sqlalchemy import text
from support import ORDER_SELECT, audit_store, call, hook_request
from tokens import (
    BASE,
    SigningKey,
    claims,
    jwks,
    mint,
    mint_hs256_with_public_key,
    mint_unsigned,
    tamper,
)

from cds_spine.app import create_app
from cds_spine.logs import JsonFormatter
from cds_spine.security.policy import ConfigurationError
from cds_spine.settings import Settings

ISSUER_A = "https://ehr-a.example.org"
ISSUER_B = "https://ehr-b.example.org"
JWKS_B = f"{ISSUER_B}/.well-known/jwks.json"
SANDBOX = "https://sandbox.cds-hooks.org"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SERVICE_URL = f"{BASE}/cds-services/{ORDER_SELECT}"

ES384 = SigningKey.ec("a-es384")
RS384 = SigningKey.rsa("a-rs384", "RS384")
RS256 = SigningKey.rsa("b-rs256", "RS256")
STRANGER = SigningKey.ec("a-es384")  # same kid as ES384, different key


@pytest.fixture
def trust_file(tmp_path):
    (tmp_path / "ehr-a-jwks.json").write_text(json.dumps(jwks(ES384, RS384)))
    path = tmp_path / "trusted-clients.yaml"
    path.write_text(yaml.safe_dump([
        {"iss": ISSUER_A, "jwks_file": "ehr-a-jwks.json"},
        {"iss": ISSUER_B, "jwks_url": JWKS_B, "tenants": ["hospital-b"], "algorithms": ["RS256"]},
    ]))
    return path


@pytest.fixture
def secured(make_client, trust_file):
    def make(**settings):
        return make_client(auth="required", trusted_clients=trust_file, public_base_url=BASE, **settings)
    return make


@pytest.fixture
def client(secured):
    return secured()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def post(client, token: str | None):
    headers = bearer(token) if token else {}
    return call(client, ORDER_SELECT, hook_request(), headers=headers)


def a_token(key: SigningKey = ES384, aud=SERVICE_URL, **extra) -> str:
    header = extra.pop("header", {})
    return mint(key, claims(ISSUER_A, aud, **extra), **header)


def assert_refused(response) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["issue"] == [{"severity": "error", "code": "login", "diagnostics": "authentication required"}]


# --- G50, G51 ------------------------------------------------------------------------------------------

def test_no_token_is_refused_but_preflight_needs_none(client):
    assert_refused(post(client, None))
    assert_refused(client.get("/cds-services"))
    preflight = client.options(f"/cds-services/{ORDER_SELECT}", headers={
        "Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 200


def test_401_carries_cors_headers(client):
    response = client.get("/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert response.status_code == 401 and "access-control-allow-origin" in response.headers


@pytest.mark.parametrize("key", [ES384, RS384], ids=["ES384", "RS384"])
def test_valid_tokens_of_a_pinned_issuer(client, key):
    assert post(client, a_token(key)).status_code == 200


def test_valid_rs256_token_of_a_second_issuer_with_jwks_url(client, httpx_mock):
    httpx_mock.add_response(url=JWKS_B, json=jwks(RS256))
    token = mint(RS256, claims(ISSUER_B, SERVICE_URL, tenant="hospital-b"), jku=JWKS_B)
    assert post(client, token).status_code == 200
    assert post(client, mint(RS256, claims(ISSUER_B, SERVICE_URL, tenant="hospital-b"))).status_code == 200
    assert len(httpx_mock.get_requests()) == 1  # cached


def test_discovery_and_feedback_need_tokens_for_their_own_url(client):
    assert client.get("/cds-services", headers=bearer(a_token(aud=f"{BASE}/cds-services"))).status_code == 200
    feedback = {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:00:00Z"}]}
    url = f"/cds-services/{ORDER_SELECT}/feedback"
    assert_refused(client.post(url, json=feedback, headers=bearer(a_token(aud=SERVICE_URL))))
    assert client.post(url, json=feedback, headers=bearer(a_token(aud=f"{SERVICE_URL}/feedback"))).status_code == 200


# --- G52, G53, G54 --------------------------------------------------------------------------------------

def test_alg_none_is_refused(client):
    assert_refused(post(client, mint_unsigned(claims(ISSUER_A, SERVICE_URL), ES384.kid)))


def test_hs256_signed_with_the_public_key_is_refused(client):
    assert_refused(post(client, mint_hs256_with_public_key(ES384, claims(ISSUER_A, SERVICE_URL))))


@pytest.mark.parametrize("shift,accepted", [(-600, False), (-30, True)])
def test_expiry_with_leeway(client, shift, accepted):
    now = int(time.time())
    token = mint(ES384, {**claims(ISSUER_A, SERVICE_URL), "iat": now - 300 + shift, "exp": now + shift})
    assert (post(client, token).status_code == 200) is accepted


@pytest.mark.parametrize("field", ["iat", "nbf"])
def test_not_yet_valid_beyond_leeway_is_refused(client, field):
    payload = claims(ISSUER_A, SERVICE_URL)
    payload[field] = int(time.time()) + 600
    payload["exp"] = payload[field] + 300
    assert_refused(post(client, mint(ES384, payload)))


def test_missing_iat_or_jti_is_refused(client):
    for claim in ("iat", "jti"):
        payload = claims(ISSUER_A, SERVICE_URL)
        del payload[claim]
        assert_refused(post(client, mint(ES384, payload)))


def test_lifetime_over_the_cap_is_refused(client):
    assert_refused(post(client, a_token(lifetime=7200)))


@pytest.mark.parametrize("aud", [f"{BASE}/cds-services/spine-pathway-order-sign", f"{BASE}/cds-services",
                                 "https://other.example.org/cds-services/spine-pathway-order-select"])
def test_wrong_aud_is_refused(client, aud):
    assert_refused(post(client, a_token(aud=aud)))


def test_wrong_aud_logs_the_expected_and_the_received_audience_and_counts_it(client, caplog):
    before = client.get("/metrics").text
    assert_refused(post(client, a_token(aud="cds.example.org/cds-services/x")))
    after = client.get("/metrics").text
    assert value(after, "cds_spine_auth_failures_total", reason="aud") == value(
        before, "cds_spine_auth_failures_total", reason="aud") + 1
    assert (f"aud is not this endpoint: expected '{SERVICE_URL}' (CDS_SPINE_PUBLIC_BASE_URL + path), "
            f"received 'cds.example.org/cds-services/x'") in caplog.text
    [refusal] = [r for r in caplog.records if "authentication failed" in r.getMessage()]
    line = json.loads(JsonFormatter().format(refusal))  # what a log pipeline gets with CDS_SPINE_LOG_FORMAT=json
    assert (line["event"], line["check"], line["path"]) == ("authentication-failed", "aud", "/cds-services/" + ORDER_SELECT)
    assert line["reason"].startswith("aud is not this endpoint") and line["iss"]


@pytest.mark.parametrize("url, accepted", [
    ("https://cds.example.org", True), ("https://cds.example.org/cds", True), ("http://localhost:8080", True),
    ("http://127.0.0.1:8080", True), ("cds.example.org", False), ("http://cds.example.org", False),
    ("https://", False), ("ftp://cds.example.org", False), ("https://cds.example.org/?x=1", False),
])
def test_public_base_url_is_an_absolute_https_url(url, accepted):
    if accepted:
        assert Settings(public_base_url=url).public_base_url == url
    else:
        with pytest.raises(ValueError, match="CDS_SPINE_PUBLIC_BASE_URL|must be"):
            Settings(public_base_url=url)


@pytest.mark.parametrize("aud", [[SERVICE_URL], [SERVICE_URL + "/"], SERVICE_URL + "/", ["x", SERVICE_URL]])
def test_aud_as_array_or_with_trailing_slash(client, aud):
    assert post(client, a_token(aud=aud)).status_code == 200


@pytest.mark.parametrize("typ,accepted", [("jwt", True), ("JWT", True), ("at+jwt", False), (None, False)])
def test_typ_is_compared_case_insensitively(client, typ, accepted):
    token = mint(ES384, claims(ISSUER_A, SERVICE_URL), typ=typ) if typ else jwt_without_typ()
    assert (post(client, token).status_code == 200) is accepted


def jwt_without_typ() -> str:
    return mint(ES384, claims(ISSUER_A, SERVICE_URL), typ=None)


# --- G55: issuers, keys, jku --------------------------------------------------------------------------

def test_untrusted_issuer_is_refused(client):
    assert_refused(post(client, mint(ES384, claims("https://evil.example.org", SERVICE_URL))))


def test_unknown_kid_is_refused(client):
    assert_refused(post(client, mint(SigningKey.ec("unknown-kid"), claims(ISSUER_A, SERVICE_URL))))


EPIC_ISS = "https://fhir.hospital.example.org/api/FHIR/R4"
EPIC_SETS = ["https://fhir.hospital.example.org/keys/current", "https://fhir.hospital.example.org/keys/next"]
EPIC_CURRENT, EPIC_NEXT = SigningKey.rsa("epic-current", "RS384"), SigningKey.rsa("epic-next", "RS384")


def test_an_issuer_with_several_jwks_urls_accepts_a_jku_among_them_only(make_client, tmp_path, httpx_mock):
    """Epic's shape: RS384, `iss` the organization's FHIR base, `sub` the client id, `jku` naming the key set."""
    trusted = tmp_path / "trusted.yaml"
    trusted.write_text(yaml.safe_dump([{"iss": EPIC_ISS, "jwks_url": EPIC_SETS, "algorithms": ["RS384"]}]))
    client = make_client(auth="required", trusted_clients=trusted, public_base_url=BASE)
    httpx_mock.add_response(url=EPIC_SETS[0], json=jwks(EPIC_CURRENT))
    httpx_mock.add_response(url=EPIC_SETS[1], json=jwks(EPIC_NEXT))
    for key, jku in ((EPIC_CURRENT, EPIC_SETS[0]), (EPIC_NEXT, EPIC_SETS[1])):
        token = mint(key, claims(EPIC_ISS, SERVICE_URL, sub="epic-cds-client-0a1b"), jku=jku)
        assert post(client, token).status_code == 200, jku
    outside = mint(EPIC_NEXT, claims(EPIC_ISS, SERVICE_URL, sub="epic-cds-client-0a1b"), jku=f"{EPIC_SETS[1]}/other")
    assert_refused(post(client, outside))
    assert sorted(str(r.url) for r in httpx_mock.get_requests()) == sorted(EPIC_SETS)  # each set once, cached


def test_key_of_someone_else_under_a_known_kid_is_refused(client):
    assert_refused(post(client, a_token(STRANGER)))


def test_foreign_jku_is_refused_and_never_fetched(client, httpx_mock):
    httpx_mock.add_response(url=JWKS_B, json=jwks(RS256), is_optional=True)
    token = mint(RS256, claims(ISSUER_B, SERVICE_URL, tenant="hospital-b"), jku="https://attacker.example/jwks")
    assert_refused(post(client, token))
    assert [str(r.url) for r in httpx_mock.get_requests()] == []


def test_jku_is_ignored_for_a_pinned_issuer(client, httpx_mock):
    assert post(client, a_token(header={"jku": "https://attacker.example/jwks"})).status_code == 200
    assert httpx_mock.get_requests() == []


def test_alg_outside_the_issuer_list_is_refused(client, httpx_mock):
    httpx_mock.add_response(url=JWKS_B, json=jwks(RS256), is_optional=True)
    other = SigningKey.ec("b-es384")
    assert_refused(post(client, mint(other, claims(ISSUER_B, SERVICE_URL, tenant="hospital-b"))))


# --- G56, G57, G58 ------------------------------------------------------------------------------------

def test_replayed_token_is_refused(client):
    token = a_token()
    assert post(client, token).status_code == 200
    assert_refused(post(client, token))


def test_replay_cache_down_is_the_documented_503_not_a_500(client, caplog):
    with audit_store(client).engine.begin() as connection:
        connection.execute(text("DROP TABLE jwt_replay"))
    response = post(client, a_token())
    assert response.status_code == 503
    assert response.json()["issue"][0]["code"] == "transient"
    assert "failed to check a JWT for replay (OperationalError)" in caplog.text


def test_tampered_payload_is_refused_and_logs_say_why_without_the_token(client, caplog):
    caplog.set_level("INFO")
    token = tamper(a_token())
    assert_refused(post(client, token))
    assert "InvalidSignatureError" in caplog.text and f"iss={ISSUER_A}" in caplog.text
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


@pytest.mark.parametrize("tenant,accepted", [("hospital-b", True), ("hospital-c", False), (None, False)])
def test_tenants_are_checked_when_listed(client, httpx_mock, tenant, accepted):
    httpx_mock.add_response(url=JWKS_B, json=jwks(RS256))
    extra = {"tenant": tenant} if tenant else {}
    assert (post(client, mint(RS256, claims(ISSUER_B, SERVICE_URL, **extra))).status_code == 200) is accepted


def test_token_without_tenant_is_fine_when_tenants_are_not_listed(client):
    assert post(client, a_token()).status_code == 200


# --- G59: the sandbox profile -------------------------------------------------------------------------

def sandbox_shaped_token(key: SigningKey) -> str:
    return mint(key, claims(SANDBOX, SERVICE_URL), jku=f"{SANDBOX}/.well-known/jwks.json")


def test_sandbox_profile_pins_the_published_sandbox_key(secured, httpx_mock, caplog):
    caplog.set_level("INFO")
    client = secured(sandbox=True)
    published = json.loads((ROOT / "src" / "cds_spine" / "security" / "sandbox-jwks.json").read_text())
    assert published["keys"][0]["kid"] == SANDBOX_KID
    impostor = SigningKey.ec(SANDBOX_KID)  # right kid, not the sandbox's key
    assert_refused(post(client, sandbox_shaped_token(impostor)))
    assert "InvalidSignatureError" in caplog.text  # the issuer was trusted, the signature decided
    assert httpx_mock.get_requests() == []  # the sandbox's jku was not fetched


def test_sandbox_issuer_is_untrusted_without_the_profile(client, caplog):
    caplog.set_level("INFO")
    assert_refused(post(client, sandbox_shaped_token(SigningKey.ec(SANDBOX_KID))))
    assert "iss is not a trusted client" in caplog.text


def test_sandbox_profile_warns_loudly(make_client, caplog):
    caplog.set_level("WARNING")
    make_client(auth="required", sandbox=True, public_base_url=BASE)
    assert "PUBLIC" in caplog.text and "sandbox" in caplog.text


# --- start-up policy --------------------------------------------------------------------------------

@pytest.mark.parametrize("settings,message", [
    ({"host": "0.0.0.0", "auth": "disabled"}, "not a loopback address"),
    ({"host": "0.0.0.0"}, "no client is trusted"),
    ({"auth": "required"}, "no client is trusted"),
    ({"auth": "required", "sandbox": True}, "CDS_SPINE_PUBLIC_BASE_URL"),
])
def test_unsafe_settings_stop_the_service(knowledge, settings, message):
    with pytest.raises(ConfigurationError, match=message):
        create_app(Settings(**settings), knowledge)


def test_disabled_on_loopback_warns_loudly(make_client, caplog):
    caplog.set_level("WARNING")
    client = make_client()
    assert "AUTHENTICATION IS DISABLED" in caplog.text
    assert client.get("/cds-services").status_code == 200


@pytest.mark.parametrize("entry,problem", [
    ({"iss": ISSUER_A, "jwks_url": "http://ehr-a.example.org/jwks"}, "https"),
    ({"iss": ISSUER_A, "jwks_url": JWKS_B, "algorithms": ["HS256"]}, "algorithms"),
    ({"iss": ISSUER_A}, "exactly one of jwks_url and jwks_file"),
    ({"iss": ISSUER_A, "jwks_file": "missing.json"}, "missing.json"),
])
def test_bad_trusted_clients_file_is_named(knowledge, tmp_path, entry, problem):
    path = tmp_path / "clients.yaml"
    path.write_text(yaml.safe_dump([entry]))
    with pytest.raises(ConfigurationError) as error:
        create_app(Settings(auth="required", trusted_clients=path, public_base_url=BASE), knowledge)
    assert str(path.name) in str(error.value) and problem in str(error.value)


# --- hostile input ------------------------------------------------------------------------------------

def test_body_over_the_limit_is_413(make_client):
    client = make_client(max_body_bytes=2048)
    big = json.dumps(hook_request(extension={"padding": "x" * 4096}))
    response = client.post(f"/cds-services/{ORDER_SELECT}", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["issue"][0]["code"] == "too-long"

    def chunks():
        yield big.encode()[:1000]
        yield big.encode()[1000:]

    streamed = client.post(f"/cds-services/{ORDER_SELECT}", content=chunks(),
                           headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_is_415(make_client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = make_client().post(f"/cds-services/{ORDER_SELECT}", content=json.dumps(hook_request()),
                                  headers=headers)
    assert response.status_code == 415


def test_fhir_json_content_type_is_accepted(make_client):
    response = make_client().post(f"/cds-services/{ORDER_SELECT}", content=json.dumps(hook_request()),
                                  headers={"Content-Type": "application/fhir+json; charset=utf-8"})
    assert response.status_code == 200


@pytest.mark.parametrize("body", [b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
                                  b"[" + b"[]," * 20000 + b"[]]"])
def test_deep_or_huge_json_is_a_bounded_400(make_client, body):
    client = make_client(max_json_containers=10_000)
    response = client.post(f"/cds-services/{ORDER_SELECT}", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "Traceback" not in response.text and "File \"" not in response.text


def test_patient_ids_in_logs_are_keyed_hashes(make_client, caplog):
    caplog.set_level("INFO")
    client = make_client(audit_hash_key="k1")
    request = hook_request()
    request["context"]["patientId"] = "patient-12345"
    call(client, ORDER_SELECT, request)
    expected = hmac.new(b"k1", b"patient-12345", hashlib.sha256).hexdigest()[:24]
    assert f"patient={expected}" in caplog.text and "patient-12345" not in caplog.text


def test_refused_tokens_are_counted_by_the_check_that_failed_for_the_dashboard(secured, tmp_path):
    database = f"sqlite:///{tmp_path / 'traffic.db'}"
    client = secured(database_url=database)
    assert_refused(post(client, a_token(aud="cds.example.org/cds-services/x")))
    assert_refused(post(client, None))
    client.__exit__(None, None, None)  # the app stops: what it refused is written
    with audit_store(client).engine.connect() as connection:
        counted = dict(connection.execute(text("select reason, sum(count) from refusals group by reason")).all())
    assert counted == {"jwt-aud": 1, "jwt-no": 1}
