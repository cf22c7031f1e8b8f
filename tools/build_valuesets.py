#!/usr/bin/env python3
"""Build cards/valuesets/*.json (FHIR R4 ValueSets with an expansion) from knowledge/.

knowledge/valuesets.yaml says which rows of which CSV make up each value set. Every code keeps
its source (an extension on the expansion entry) and the pathway's attributes (region, guidance,
kind) as extensions too. The output is deterministic, so a test can check that the committed
value sets are what this script makes:

    python tools/build_valuesets.py [--knowledge knowledge] [--out cards/valuesets] [--check]
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CANONICAL_BASE = "https://cds-spine.org/fhir"
SOURCE_EXTENSION = f"{CANONICAL_BASE}/StructureDefinition/code-source"
ATTRIBUTE_EXTENSION = f"{CANONICAL_BASE}/StructureDefinition/code-attribute"
EXPANSION_TIMESTAMP = "2026-11-21T00:00:00Z"
DEFAULT_SOURCES = {
    "cpt-valuesets.csv": "CPT code and short descriptor from general knowledge [M] (AMA licence; confirm locally)",
}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    default_source = DEFAULT_SOURCES.get(path.name, "")
    for row in rows:
        row["group"] = row.get("valueset") or row.get("group") or ""
        row.setdefault("attributes", "")
        row["source"] = row.get("source") or default_source
    return rows


def parse_attributes(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(";") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def select(rows: list[dict[str, str]], include: dict) -> list[dict[str, str]]:
    codes = set(include.get("codes") or [])
    exclude = re.compile(include["exclude"]) if include.get("exclude") else None
    wanted_attribute = include.get("attribute")
    chosen = []
    for row in rows:
        if row["group"] != include["group"]:
            continue
        if codes and row["code"] not in codes:
            continue
        if exclude and exclude.search(row["code"]):
            continue
        if wanted_attribute and wanted_attribute not in row["attributes"].split(";"):
            continue
        chosen.append(row)
    if codes and len(chosen) != len(codes):
        missing = codes - {row["code"] for row in chosen}
        raise SystemExit(f"{include['file']} group {include['group']}: codes not found: {sorted(missing)}")
    if not chosen:
        raise SystemExit(f"{include['file']} group {include['group']}: nothing selected")
    return chosen


def expansion_entry(row: dict[str, str], attributes: dict[str, str]) -> dict:
    extensions = [{"url": SOURCE_EXTENSION, "valueString": row["source"]}] if row["source"] else []
    extensions += [
        {"url": ATTRIBUTE_EXTENSION, "extension": [
            {"url": "name", "valueCode": name}, {"url": "value", "valueCode": value}]}
        for name, value in sorted(attributes.items())
    ]
    entry = {"system": row["system"], "code": row["code"], "display": row["display"]}
    if extensions:
        entry = {"extension": extensions, **entry}
    return entry


# Spinal segments a display names -> the region attribute the pathway reads (cards/pathway.yaml
# region_segments says which segments each region covers); the whole spine is no region at all.
REGION_OF_SEGMENTS = {
    frozenset({"cervical"}): "cervical",
    frozenset({"thoracic"}): "thoracic",
    frozenset({"lumbar"}): "lumbar",
    frozenset({"cervical", "thoracic"}): "cervical-thoracic",
    frozenset({"thoracic", "lumbar"}): "thoracolumbar",
}


def region_from_display(display: str, keywords: dict[str, list[str]]) -> str | None:
    """The region a display names: every keyword found (a whole word or phrase) adds its segments."""
    words = f" {' '.join(re.findall(r'[a-z]+(?:-[a-z]+)*', display.lower()))} "
    segments = {segment for keyword, found in keywords.items() if f" {keyword} " in words for segment in found}
    return REGION_OF_SEGMENTS.get(frozenset(segments))


def build_valueset(name: str, spec: dict, knowledge: Path) -> dict:
    contains: dict[tuple[str, str], dict] = {}
    keywords = spec.get("region_keywords") or {}
    for include in spec["include"]:
        rows = select(read_rows(knowledge / include["file"]), include)
        overrides = include.get("attributes") or {}
        for row in rows:
            attributes = parse_attributes(row["attributes"])
            attributes.pop("category", None)
            attributes.update(parse_attributes(overrides.get("all", "")))
            attributes.update(parse_attributes(overrides.get(row["code"], "")))
            region = region_from_display(row["display"], keywords) if keywords else None
            if region and "region" not in attributes:
                attributes["region"] = region
            contains[(row["system"], row["code"])] = expansion_entry(row, attributes)
    return {
        "resourceType": "ValueSet",
        "id": name,
        "url": f"{CANONICAL_BASE}/ValueSet/{name}",
        "name": "".join(part.capitalize() for part in name.split("-")),
        "title": spec["title"],
        "status": "active",
        "description": spec["description"],
        "expansion": {
            "timestamp": EXPANSION_TIMESTAMP,
            "total": len(contains),
            "contains": [contains[key] for key in sorted(contains)],
        },
    }


def render(valueset: dict) -> str:
    return json.dumps(valueset, indent=1, ensure_ascii=False) + "\n"


def build_all(knowledge: Path) -> dict[str, str]:
    specs = yaml.safe_load((knowledge / "valuesets.yaml").read_text(encoding="utf-8"))
    return {f"{name}.json": render(build_valueset(name, spec, knowledge)) for name, spec in specs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--knowledge", type=Path, default=ROOT / "knowledge")
    parser.add_argument("--out", type=Path, default=ROOT / "cards" / "valuesets")
    parser.add_argument("--check", action="store_true", help="exit 1 if the output folder is not up to date")
    args = parser.parse_args()
    files = build_all(args.knowledge)
    existing = {path.name: path.read_text(encoding="utf-8") for path in args.out.glob("*.json")}
    if args.check:
        stale = sorted(set(files) ^ set(existing) | {n for n in files if existing.get(n) != files[n]})
        if stale:
            sys.exit(f"cards/valuesets is out of date: {', '.join(stale)}; run `make valuesets`")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for name in set(existing) - set(files):
        (args.out / name).unlink()
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} value sets to {args.out}")


if __name__ == "__main__":
    main()
