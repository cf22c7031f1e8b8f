"""Every worked scenario (tests/scenarios, copied from shared/scenarios) gets its expected decision over HTTP."""
from __future__ import annotations

import json

import pytest
from support import SCENARIOS, call, scenario_build

SCENARIO_FILES = sorted(SCENARIOS.glob("p*.json"))
SERVICE_FOR_HOOK = {"order-select": "spine-pathway-order-select", "order-sign": "spine-pathway-order-sign",
                    "patient-view": "spine-pathway-patient-view"}


def meets(expectation: str, indicators: list[str]) -> bool:
    return {"warning": "warning" in indicators,
            "info": "info" in indicators and "warning" not in indicators,
            "none": not indicators,
            "no-warning": "warning" not in indicators}[expectation]


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
        indicators = [card["indicator"] for card in response.json()["cards"]]
        assert meets(expect["cards"], indicators), (scenario["description"], response.json())
