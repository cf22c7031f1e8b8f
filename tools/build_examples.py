#!/usr/bin/env python3
"""Build examples/ from the worked stories in tests/scenarios: for each, a FHIR transaction Bundle
of the patient's record (to load into a FHIR server) and a ready CDS Hooks request.

The stories' dates are relative; the files are written as of one day (today by default, or --as-of
YYYY-MM-DD), recorded in the index (`asOf`), so that the same files can be rebuilt and checked. The
committed copies in examples/ change only when a story does (`--out examples --as-of YYYY-MM-DD`);
`make examples` writes copies dated today to examples/today/, which git ignores, for the live service.
Evaluate the committed ones as of their day:

    cds-spine evaluate examples/requests/p01-esi-nothing-tried.json --as-of "$(jq -r .asOf examples/index.json)"
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from datetime import UTC, date, datetime
from pathlib import Path

from cds_spine.cdshooks.services import discovery
from cds_spine.pathway import load_knowledge
from cds_spine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "scenarios"


def day(value: str) -> date:
    """YYYY-MM-DD, or `today` (UTC)."""
    return datetime.now(UTC).date() if value == "today" else date.fromisoformat(value)


def _scenario_builder():
    spec = importlib.util.spec_from_file_location("scenario_build", SCENARIOS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transaction(scenario: dict) -> dict:
    resources = [scenario["patient"]] + [resource for resources in scenario.get("record", {}).values()
                                         if isinstance(resources, list) for resource in resources]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r,
         "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}


def build(as_of: date) -> dict[str, str]:
    builder = _scenario_builder()
    advertised = discovery(load_knowledge(Settings().knowledge_dir()))
    files: dict[str, str] = {}
    index = []
    for path in sorted(SCENARIOS.glob("p*.json")):
        scenario = json.loads(path.read_text(encoding="utf-8"))
        dated = builder.expand_dates(scenario, as_of)
        keys = builder.keys_from_discovery(advertised, scenario["hook"])
        request = builder.build_request(scenario, keys, today=as_of, hook_instance=f"example-{scenario['id']}")
        for entry in request.get("prefetch", {}).values():
            for item in (entry or {}).get("entry", []) if isinstance(entry, dict) else []:
                item["fullUrl"] = f"{item['resource']['resourceType']}/{item['resource']['id']}"
        files[f"requests/{path.name}"] = json.dumps(request, indent=1) + "\n"
        files[f"bundles/{path.name}"] = json.dumps(transaction(dated), indent=1) + "\n"
        index.append({"id": scenario["id"], "description": scenario["description"], "hook": scenario["hook"],
                      "request": f"requests/{path.name}", "bundle": f"bundles/{path.name}",
                      "expect": scenario["expect"]})
    files["index.json"] = json.dumps({"asOf": as_of.isoformat(), "examples": index}, indent=1) + "\n"
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as-of", type=day, default="today", help="YYYY-MM-DD or today (the default)")
    parser.add_argument("--out", type=Path, default=ROOT / "examples")
    args = parser.parse_args()
    for name, text in build(args.as_of).items():
        target = args.out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    print(f"wrote examples as of {args.as_of} to {args.out}")


if __name__ == "__main__":
    main()
