"""Every worked scenario (tests/scenarios, copied from shared/scenarios) gets its expected decision over HTTP."""
from __future__ import annotations

import json

import pytest
from support import SCENARIOS, call, day, meets_expectation, scenario_build

SCENARIO_FILES = sorted(SCENARIOS.glob("p*.json"))
SERVICE_FOR_HOOK = {"order-select": "spine-pathway-order-select", "order-sign": "spine-pathway-order-sign",
                    "patient-view": "spine-pathway-patient-view"}


# What each story's card must say: its summary (the finding and its numbers) and the facts of its detail a
# clinician reads; an indicator alone would let two stories with swapped findings pass.
CARDS = {
    "p01-esi-nothing-tried": (["No conservative therapy documented in the last 12 months before lumbar ESI; try "
                               "physical therapy first"], ["**Missing:** 28 days of conservative therapy before lumbar ESI."]),
    "p02-esi-after-pt": (["No baseline pain and function score in the last 90 days; record pain and function before "
                          "an ESI"], ["Longest continuous episode"]),
    "p03-esi-short-nsaid": (["Only 11 days of conservative therapy documented; 28 days recommended before lumbar ESI"],
                            ["Longest continuous episode: 11 days"]),
    "p04-esi-cauda-equina": (["Red flag on record (Cauda equina syndrome): no lumbar ESI before urgent evaluation"],
                             ["Red flag: Cauda equina syndrome"]),
    "p05-esi-fifth-in-a-year": (["This would be lumbar ESI number 5 in 12 months; at most 4 per region are "
                                 "recommended"], ["Prior lumbar ESI: 4 in 12 months"]),
    "p06-surgery-after-pt-and-esi": ([], []),
    "p07-fusion-nothing-tried": (["No spondylolisthesis, instability or fracture on record: payers do not cover "
                                  "fusion for herniation or stenosis alone"],
                                 ["No conservative therapy documented in the last 12 months before lumbar fusion",
                                  "**Missing:** 90 days of conservative therapy before lumbar fusion."]),
    "p08-esi-without-guidance": (["ESI ordered without fluoroscopic or CT guidance; order an image-guided ESI instead"],
                                 []),
    "p09-unrelated-order": ([], []),
    "p10-esi-axial-only": (["No radicular or stenosis diagnosis on record for lumbar ESI: not indicated for axial "
                            "pain alone"], []),
    "p11-esi-repeat-poor-response": (["Last lumbar ESI: pain 7/10 on {day-62}, 6/10 on {day-30}: 14 % relief; 50 % "
                                      "required"],
                                     ["Recorded: pain 7/10 on {day-62}", "Recorded: pain 6/10 on {day-30}"]),
    "p12-esi-repeat-relieved": (["No baseline function score in the last 90 days; record pain and function before an "
                                 "ESI"], ["Response to the last lumbar ESI"]),
    "p13-fusion-current-smoker": (["Nicotine use on record ({day-40}): payers ask for nicotine-free status before "
                                   "elective fusion"], ["Aetna CPB 0743"]),
    "p14-prp-before-esi": (["No ESI on record before this lumbar regenerative injection: the pathway places "
                            "regenerative injections after ESI"],
                           ["PRP and cell-based spine injections are investigational"]),
    "p15-prp-knee": ([], []),
    "p16-esi-repeat-promis-no-gain": (["Last lumbar ESI: PROMIS physical function 35 on {day-62}, 36.5 on {day-30}: "
                                       "1.5 points better; 3.5 required"],
                                      ["Recorded: PROMIS physical function 35 on {day-62}"]),
    "p17-fusion-cotinine-level": (["Nicotine use on record ({day-20}): payers ask for nicotine-free status before "
                                   "elective fusion"], []),
    "p18-fusion-without-instability": (["No spondylolisthesis, instability or fracture on record: payers do not cover "
                                        "fusion for herniation or stenosis alone"], []),
    "p19-esi-on-apixaban": (["Apixaban on record: hold it 3 days before lumbar ESI (intermediate bleeding risk)"],
                            ["**Anticoagulation:** Stop it only with its prescriber's agreement"]),
    "p20-esi-cancer-history-no-imaging": (["Personal history of malignant neoplasm… on record: MRI or CT of the "
                                           "spine first, before lumbar ESI"], ["**Image first:**"]),
    "p21-esi-old-mri": (["No spine MRI or CT of this region on record in 24 months before lumbar ESI: attach the "
                         "report or order one"], ["**Imaging:**", "No baseline pain and function score"]),
}


def test_there_are_scenarios():
    assert len(SCENARIO_FILES) >= 10


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.stem)
def test_scenario(client, path):
    scenario = json.loads(path.read_text())
    discovery = client.get("/cds-services").json()
    request = scenario_build.build_request(scenario, scenario_build.keys_from_discovery(discovery, scenario["hook"]))
    response = call(client, SERVICE_FOR_HOOK[scenario["hook"]], request)
    expect = scenario["expect"]
    assert response.status_code == expect["status"]
    if response.status_code == 200:
        assert meets_expectation(expect["cards"], response.json()["cards"]), (scenario["description"], response.json())
        summaries, facts = CARDS[scenario["id"]]
        days = {f"day-{n}": day(-n) for n in (20, 30, 40, 60, 62)}  # the stories' dates are relative to today
        summaries, facts = [text.format(**days) for text in summaries], [text.format(**days) for text in facts]
        cards = response.json()["cards"]
        assert [card["summary"] for card in cards] == summaries
        for fact in facts:
            assert fact in cards[0]["detail"], (fact, cards[0]["detail"])


@pytest.mark.parametrize(("name", "offered", "not_offered"), [
    ("p05-esi-fifth-in-a-year", "Prior ESI was at another level or side", "Severe or disabling pain"),
    ("p13-fusion-current-smoker", "Nicotine-free for 6 weeks (not yet recorded)",
     "Conservative therapy done outside this record"),
    ("p03-esi-short-nsaid", "Physical therapy already ordered", "Nicotine-free for 6 weeks (not yet recorded)"),
    ("p19-esi-on-apixaban", "Held as its prescriber advised", "Severe or disabling pain"),
])
def test_each_card_offers_the_override_reasons_of_its_finding(client, name, offered, not_offered):
    """Issue 33, point 7: the same six reasons were on every card (the nicotine card offered "conservative therapy
    done outside this record", the fifth-ESI card "severe or disabling pain")."""
    scenario = json.loads((SCENARIOS / f"{name}.json").read_text())
    discovery = client.get("/cds-services").json()
    request = scenario_build.build_request(scenario, scenario_build.keys_from_discovery(discovery, scenario["hook"]))
    card = call(client, SERVICE_FOR_HOOK[scenario["hook"]], request).json()["cards"][0]
    displays = [reason["display"] for reason in card["overrideReasons"]]
    assert offered in displays and not_offered not in displays
    assert "Prior authorisation granted by the payer" in displays or name == "p19-esi-on-apixaban"


def test_an_unguided_esi_is_offered_its_image_guided_code_in_its_place(client):
    """Issue 33, point 7: the card said "order an image-guided ESI instead" and offered nothing to do it."""
    scenario = json.loads((SCENARIOS / "p08-esi-without-guidance.json").read_text())
    discovery = client.get("/cds-services").json()
    request = scenario_build.build_request(scenario, scenario_build.keys_from_discovery(discovery, scenario["hook"]))
    [card] = call(client, SERVICE_FOR_HOOK[scenario["hook"]], request).json()["cards"]
    [swap] = card["suggestions"]
    assert swap["label"] == "Order the image-guided ESI instead"
    [delete, create] = swap["actions"]
    [draft] = scenario["draftOrders"]
    assert delete == {**delete, "type": "delete", "resourceId": f"ServiceRequest/{draft['id']}"}
    assert create["resource"]["code"]["coding"][0]["code"] == "62323"  # the lumbar interlaminar ESI, guided
