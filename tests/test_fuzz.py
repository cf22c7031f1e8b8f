"""Contract fuzzing: schemathesis generates requests for every operation of openapi.yaml, valid and
invalid, and sends them to the live service (uvicorn, authentication required, real JWTs minted per
request, the audit API on, draft orders annotated with system actions). No answer may be a 5xx, and every answer must match the contract.

`make test` runs a bounded, derandomized run (CDS_SPINE_FUZZ_EXAMPLES examples per operation, 200 by
default); `make fuzz` a long random one.
"""
from __future__ import annotations

import json
import os

import httpx
import pytest
import schemathesis
import yaml
from cli import ROOT
from hypothesis import HealthCheck, settings
from live import free_socket, served
from support import ORDER_SIGN, hook_request
from tokens import SigningKey, claims, jwks, mint

from cds_spine.app import create_app
from cds_spine.audit.access import key_hash
from cds_spine.settings import Settings

EXAMPLES = int(os.environ.get("CDS_SPINE_FUZZ_EXAMPLES", "200"))
DERANDOMIZE = os.environ.get("CDS_SPINE_FUZZ_RANDOM") != "1"
ISSUER = "https://ehr.example.org"
KEY = SigningKey.ec("fuzz-es384")
AUDIT_KEY = "fuzz-audit-key-0123456789abcdef0123456789"
AUDIT_USERS = [{"name": "fuzzer", "role": "analyst", "key_sha256": key_hash(AUDIT_KEY)}]

schema = schemathesis.openapi.from_path(str(ROOT / "openapi.yaml"))
# A body over the limit is refused with 413 before it is read (the sign-in form's limit is 4 KiB).
schema.config.checks.negative_data_rejection.expected_statuses.append("413")
BASE: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def live_service(tmp_path_factory, knowledge):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "jwks.json").write_text(json.dumps(jwks(KEY)))
    (folder / "trusted.yaml").write_text(yaml.safe_dump([{"iss": ISSUER, "jwks_file": "jwks.json"}]))
    sock_settings = dict(database_url=f"sqlite:///{folder / 'audit.db'}", auth="required",
                         trusted_clients=folder / "trusted.yaml", audit_users=AUDIT_USERS, annotate_orders=True,
                         # the pathway timeline on: its pages are fuzzed too
                         smart_client_id="fuzz-timeline", secret_keys="f" * 32)
    # The JWT audience is the public base URL plus the path: the socket is bound first, so its port is known.
    sock = free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with served(create_app(Settings(public_base_url=base, **sock_settings), knowledge), sock=sock) as served_at:
        assert served_at == base
        BASE["url"] = base
        yield base


@schema.auth(refresh_interval=None)
class Credentials:
    """A fresh JWT for each CDS Hooks request (its aud is the URL called, its jti unique), the audit key
    for the audit API and the dashboard."""

    def get(self, case, context):
        return None

    def set(self, case, data, context):
        path = case.formatted_path
        if path.startswith("/cds-services"):
            token = mint(KEY, claims(ISSUER, BASE["url"] + path))
        elif path.startswith(("/audit", "/dashboard")):
            token = AUDIT_KEY
        else:
            return
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=DERANDOMIZE, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case):
    case.call_and_validate(base_url=BASE["url"])


def test_the_fuzzer_is_let_in():
    """The fuzzed CDS Hooks calls carry JWTs the service accepts (else every case would stop at the 401)."""
    url = BASE["url"] + "/cds-services"
    assert httpx.get(url, headers={"Authorization": f"Bearer {mint(KEY, claims(ISSUER, url))}"}).status_code == 200


def test_an_annotated_answer_keeps_the_contract():
    """An ESI signed without conservative therapy: the answer carries a card and a system action updating the
    draft order, and both match the contract (the fuzzer's own bodies seldom hold a valid ESI order)."""
    path = f"/cds-services/{ORDER_SIGN}"
    case = schema[path.replace(ORDER_SIGN, "{serviceId}")]["POST"].Case(
        path_parameters={"serviceId": ORDER_SIGN}, body=hook_request("order-sign"), media_type="application/json",
        headers={"Authorization": f"Bearer {mint(KEY, claims(ISSUER, BASE['url'] + path))}"})
    response = case.call_and_validate(base_url=BASE["url"])
    body = response.json()
    assert body["cards"] and [action["type"] for action in body["systemActions"]] == ["update"]
