"""EHR profiles shape cards for the EHR that shows them, and nothing else: under `epic`, suggestions may all be
chosen (selectionBehavior any) and the referral is the site's preference-list item (or no suggestion); under
`oracle-health`, no link the site has not allow-listed (only the SMART app's). The profile comes from the caller's
trusted-clients entry, else CDS_SPINE_EHR_PROFILE; the decisions, findings and topics never change with it."""
from __future__ import annotations

import json

import pytest
import yaml
from cli import run_cli
from support import ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW, SCENARIOS, call, esi_order, hook_request, scenario_build
from tokens import BASE, SigningKey, claims, jwks, mint

EPIC_ITEM_SYSTEM = "urn:com.epic.cdshooks.action.code.system.preference-list-item"
PT_ITEM = "PT-REFERRAL-1234"
SMART_APP = {"smart_client_id": "spine-timeline", "public_base_url": "https://cds.example.org"}
SERVICE_FOR_HOOK = {"order-select": ORDER_SELECT, "order-sign": ORDER_SIGN, "patient-view": PATIENT_VIEW}
SCENARIO_FILES = sorted(SCENARIOS.glob("p*.json"))
EPIC = SigningKey.ec("epic-key")
GENERIC = SigningKey.ec("generic-key")
EPIC_ISS = "https://fhir.epic-hospital.example.org/api/FHIR/R4"
GENERIC_ISS = "https://ehr.example.org"


def scenario_cards(client, path) -> list[dict]:
    scenario = json.loads(path.read_text())
    discovery = client.get("/cds-services").json()
    request = scenario_build.build_request(scenario, scenario_build.keys_from_discovery(discovery, scenario["hook"]))
    response = call(client, SERVICE_FOR_HOOK[scenario["hook"]], request)
    assert response.status_code == 200
    return response.json()["cards"]


def what_the_pathway_said(cards: list[dict]) -> list[tuple]:
    return [(card["summary"], card["indicator"], card["detail"], card["source"]["topic"]["code"]) for card in cards]


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda path: path.stem)
def test_each_profile_follows_its_ehrs_rules_on_every_scenario(make_client, knowledge, path):
    generic = scenario_cards(make_client(**SMART_APP), path)
    epic = scenario_cards(make_client(**SMART_APP, ehr_profile="epic",
                                      epic_referral_preference_item=PT_ITEM), path)
    epic_unset = scenario_cards(make_client(**SMART_APP, ehr_profile="epic"), path)
    oracle = scenario_cards(make_client(**SMART_APP, ehr_profile="oracle-health"), path)
    said = what_the_pathway_said(generic)
    assert what_the_pathway_said(epic) == what_the_pathway_said(epic_unset) == what_the_pathway_said(oracle) == said
    for card in generic:
        assert card.get("selectionBehavior") == ("at-most-one" if card.get("suggestions") else None)
        assert {link["type"] for link in card["links"]} == {"absolute", "smart"}
    for card in epic:
        assert card.get("selectionBehavior") == ("any" if card.get("suggestions") else None)
        for suggestion in card.get("suggestions", []):
            [action] = suggestion["actions"]  # one order beside the injection: suggestions never exclude each other
            assert action["type"] == "create"
            assert action["resource"]["code"]["coding"] == [{"system": EPIC_ITEM_SYSTEM, "code": PT_ITEM}]
    # Epic creates an order only from a site's preference-list item: the physical therapy referral has one, the
    # urgent MRI and consult a red flag suggests have none (the card's summary says what to do).
    referral = knowledge.config.card.suggestions.referral.code
    assert [bool(card.get("suggestions")) for card in epic] == [any(
        action["resource"]["code"]["coding"][0]["code"] == referral for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"] if action["type"] == "create") for card in generic]
    assert not any(card.get("suggestions") or card.get("selectionBehavior") for card in epic_unset)
    for card in oracle:
        assert [link["type"] for link in card["links"]] == ["smart"]
        assert card["source"]["url"]  # the guideline stays named where the EHR shows the source


def test_a_scenario_with_a_suggestion_is_among_them(make_client):
    """The profile rules above are exercised: some scenario's card suggests the referral."""
    cards = [card for path in SCENARIO_FILES for card in scenario_cards(make_client(), path)]
    assert any(card.get("suggestions") for card in cards)


@pytest.fixture
def two_ehrs(make_client, tmp_path):
    (tmp_path / "epic.json").write_text(json.dumps(jwks(EPIC)))
    (tmp_path / "generic.json").write_text(json.dumps(jwks(GENERIC)))
    trusted = tmp_path / "trusted-clients.yaml"
    trusted.write_text(yaml.safe_dump([{"iss": EPIC_ISS, "jwks_file": "epic.json", "profile": "epic"},
                                       {"iss": GENERIC_ISS, "jwks_file": "generic.json"}]))
    return make_client(auth="required", trusted_clients=trusted, public_base_url=BASE,
                       epic_referral_preference_item=PT_ITEM)


@pytest.mark.parametrize("key, iss, behaviour", [(EPIC, EPIC_ISS, "any"), (GENERIC, GENERIC_ISS, "at-most-one")])
def test_the_profile_is_the_calling_clients(two_ehrs, key, iss, behaviour):
    # Epic's claim shape: iss is the organization's FHIR base, sub the client id.
    token = mint(key, claims(iss, f"{BASE}/cds-services/{ORDER_SIGN}", sub="epic-client-id-0a1b2c"))
    response = call(two_ehrs, ORDER_SIGN, hook_request("order-sign"), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    [card] = response.json()["cards"]
    assert card["selectionBehavior"] == behaviour


@pytest.mark.slow  # runs the command line in a process of its own
def test_check_config_warns_of_the_epic_profile_without_a_referral_item(tmp_path):
    result = run_cli("check-config", CDS_SPINE_EHR_PROFILE="epic",
                     CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}")
    assert result.returncode == 1, result.stderr
    assert "warning: the epic profile (CDS_SPINE_EHR_PROFILE) without CDS_SPINE_EPIC_REFERRAL_PREFERENCE_ITEM" \
        in result.stderr
    fine = run_cli("check-config", CDS_SPINE_EHR_PROFILE="epic", CDS_SPINE_EPIC_REFERRAL_PREFERENCE_ITEM=PT_ITEM,
                   CDS_SPINE_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.db'}")
    assert "epic profile" not in fine.stderr


def test_a_request_as_epic_sends_it(make_client):
    """Epic's documented request shape: a PractitionerRole user, its com.epic.cdshooks.request.* extensions, an
    STU3 ProcedureRequest among the draft orders, and the selected order in `selections`."""
    request = hook_request("order-select", orders=[
        {**esi_order("proc-req-1", resource_type="ProcedureRequest"), "status": "draft"},
        esi_order("esi-other", code="62321")], selections=["ProcedureRequest/proc-req-1"])
    request["context"]["userId"] = "PractitionerRole/eYg3-1aBmlDN3c3a8k6Y9Ew3"
    request["extension"] = {"com.epic.cdshooks.request.bpa-trigger-action": "23",
                            "com.epic.cdshooks.request.cds-hooks-specification-version": "2.0",
                            "com.epic.cdshooks.request.fhir-version": "R4"}
    client = make_client(ehr_profile="epic", epic_referral_preference_item=PT_ITEM)
    response = call(client, ORDER_SELECT, request)
    assert response.status_code == 200
    [card] = response.json()["cards"]  # the selected order only
    assert card["source"]["topic"]["code"] == "conservative-missing"
    [suggestion] = card["suggestions"]
    assert card["selectionBehavior"] == "any" and suggestion["actions"][0]["type"] == "create"
