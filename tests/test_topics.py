"""Every card says what it is about in source.topic: a stable code of the service's CodeSystem
(cards/card-topics.json), one per finding and one for the patient-view card, so that an EHR can recognise a card,
and a clinician's override of it, on later calls (Epic respects an override only for a card with a topic)."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml
from cli import ROOT
from fhir.resources.R4B.codesystem import CodeSystem
from support import PATIENT_VIEW, SCENARIOS, call, hook_request, scenario_build

from cds_spine.pathway import KnowledgeError, load_knowledge

TOPICS = ROOT / "cards" / "card-topics.json"
SYSTEM = "https://cds-spine.org/fhir/CodeSystem/card-topic"
SERVICE_FOR_HOOK = {"order-select": "spine-pathway-order-select", "order-sign": "spine-pathway-order-sign",
                    "patient-view": PATIENT_VIEW}
# The topic each scenario's card leads with: its lead finding (or where the patient stands).
EXPECTED = {"p01-esi-nothing-tried": ["conservative-missing"], "p02-esi-after-pt": ["esi-baseline-undocumented"],
            "p03-esi-short-nsaid": ["conservative-short"], "p04-esi-cauda-equina": ["red-flag-injection"],
            "p05-esi-fifth-in-a-year": ["esi-limit-exceeded"], "p06-surgery-after-pt-and-esi": [],
            "p07-fusion-nothing-tried": ["fusion-without-instability"], "p08-esi-without-guidance": ["no-imaging-guidance"],
            "p09-unrelated-order": [], "p10-esi-axial-only": ["no-qualifying-diagnosis"],
            "p11-esi-repeat-poor-response": ["esi-poor-response"], "p12-esi-repeat-relieved": ["esi-baseline-undocumented"],
            "p13-fusion-current-smoker": ["fusion-smoker"], "p14-prp-before-esi": ["regenerative-before-esi"],
            "p15-prp-knee": [], "p16-esi-repeat-promis-no-gain": ["esi-poor-response"],
            "p17-fusion-cotinine-level": ["fusion-smoker"], "p18-fusion-without-instability": ["fusion-without-instability"],
            "p19-esi-on-apixaban": ["anticoagulant"], "p20-esi-cancer-history-no-imaging": ["image-first"],
            "p21-esi-old-mri": ["imaging-undocumented"]}


def test_the_topics_are_a_valid_fhir_r4_code_system_with_a_code_per_finding():
    code_system = CodeSystem.model_validate_json(TOPICS.read_bytes())
    assert code_system.url == SYSTEM and code_system.status == "active" and code_system.content == "complete"
    codes = {concept.code for concept in code_system.concept}
    findings = set(yaml.safe_load((ROOT / "cards" / "pathway.yaml").read_text())["findings"])
    assert findings and codes == findings | {"patient-summary"}


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("p*.json")), ids=lambda path: path.stem)
def test_every_scenario_card_carries_its_topic(client, path):
    scenario = json.loads(path.read_text())
    discovery = client.get("/cds-services").json()
    request = scenario_build.build_request(scenario, scenario_build.keys_from_discovery(discovery, scenario["hook"]))
    cards = call(client, SERVICE_FOR_HOOK[scenario["hook"]], request).json()["cards"]
    topics = [card["source"]["topic"] for card in cards]
    assert [topic["code"] for topic in topics] == EXPECTED[scenario["id"]]
    assert all(topic["system"] == SYSTEM and topic["display"] for topic in topics)


def test_the_patient_view_card_is_about_where_the_patient_stands(client):
    [card] = call(client, PATIENT_VIEW, hook_request("patient-view")).json()["cards"]
    assert card["source"]["topic"] == {"system": SYSTEM, "code": "patient-summary",
                                       "display": "Where the patient stands on the pathway"}


def test_the_same_finding_has_the_same_topic_at_select_and_at_sign(client):
    select = call(client, "spine-pathway-order-select", hook_request("order-select")).json()["cards"]
    sign = call(client, "spine-pathway-order-sign", hook_request("order-sign")).json()["cards"]
    assert select and [c["source"]["topic"] for c in select] == [c["source"]["topic"] for c in sign]


def test_a_finding_without_a_topic_stops_start_up_naming_the_file(tmp_path):
    cards = tmp_path / "cards"
    shutil.copytree(ROOT / "cards", cards)
    document = json.loads((cards / "card-topics.json").read_text())
    document["concept"] = [c for c in document["concept"] if c["code"] != "esi-too-soon"]
    (cards / "card-topics.json").write_text(json.dumps(document))
    with pytest.raises(KnowledgeError, match=r"card-topics\.json: concept: no topic for esi-too-soon"):
        load_knowledge(cards)
