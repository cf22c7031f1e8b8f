"""cards/: value sets match their sources, and a bad file stops start-up naming the file and field."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from cli import ROOT
from fhir.resources.R4B.valueset import ValueSet

from cds_spine.pathway import KnowledgeError, load_knowledge
from cds_spine.pathway.record import Code

SOURCE_EXTENSION = "https://cds-spine.org/fhir/StructureDefinition/code-source"


def test_value_sets_are_built_from_knowledge():
    result = subprocess.run([sys.executable, "tools/build_valuesets.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", sorted((ROOT / "cards" / "valuesets").glob("*.json")), ids=lambda path: path.stem)
def test_every_value_set_is_a_valid_fhir_r4_value_set(path):
    """The service reads only the elements it indexes; the files are published knowledge, so each must be a
    whole, valid FHIR R4 ValueSet."""
    valueset = ValueSet.model_validate_json(path.read_bytes())
    assert valueset.id == path.stem and valueset.expansion.contains


def test_every_code_keeps_its_source():
    for path in (ROOT / "cards" / "valuesets").glob("*.json"):
        for entry in json.loads(path.read_text())["expansion"]["contains"]:
            sources = [e["valueString"] for e in entry.get("extension", []) if e["url"] == SOURCE_EXTENSION]
            assert sources and sources[0], (path.name, entry["code"])


def test_installed_knowledge_is_the_repository_copy(knowledge):
    assert knowledge.version == load_knowledge(ROOT / "cards").version


@pytest.fixture
def cards(tmp_path):
    copy = tmp_path / "cards"
    shutil.copytree(ROOT / "cards", copy)
    return copy


def edit(cards, old: str, new: str) -> None:
    path = cards / "pathway.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("old,new,field", [
    ("lookback_days: 365", "lookback_days: -1", "lookback_days"),
    ("    max_sessions_per_region: 4", "    max_sessions_per_region: many", "rules.esi.max_sessions_per_region"),
    ("      url: https://www.cms.gov", "      url: not a url https://www.cms.gov", "rules.esi.source.url"),
    ("  criteria-met:\n", "  criteria-unknown:\n", "findings"),
    ("valueset: medication-nsaid", "valueset: medication-nsaids", "conservative.medications[0].valueset"),
    ("{therapy} documented; criteria",
     "{therapy} documented, and that is a very long way of saying that the criteria of the pathway",
     "findings.criteria-met.summary"),
    ("Only {therapy} documented", "Only {dayz} days", "findings.conservative-short.summary"),
    ("standard: does-not-align-preferences", "standard: action-completed", "share a standard code"),
    ("       better: higher, min_points: 3.5, scale: [0, 100]}", "       better: higher, scale: [0, 100]}",
     "set min_points"),
    ("unit: /10, scale: [0, 10]}", "unit: /10, scale: [10, 0]}", "observations.scores.0.scale"),
    ("PROMIS physical function, kind: function", "PROMIS physical function, kind: effort", "observations.scores.3.kind"),
])
def test_bad_pathway_file_names_file_and_field(cards, old, new, field):
    edit(cards, old, new)
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(cards)
    assert str(cards / "pathway.yaml") in str(error.value) and field in str(error.value)


def test_bad_value_set_names_the_file(cards):
    (cards / "valuesets" / "esi-order.json").write_text('{"resourceType": "ValueSet", "status": "bogus"}')
    with pytest.raises(KnowledgeError, match="esi-order.json"):
        load_knowledge(cards)



@pytest.mark.parametrize("written", [
    "http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10-cm/", "https://hl7.org/fhir/sid/icd-10-cm",
    "urn:oid:2.16.840.1.113883.6.90", "2.16.840.1.113883.6.90", "http://fhir.mimic.mit.edu/CodeSystem/diagnosis-icd10",
])
@pytest.mark.parametrize("code", ["M54.16", "M5416", "m54.16"])
def test_every_spelling_of_a_code_and_its_system_is_read(knowledge, written, code):
    assert knowledge.find([Code(written, code)], "qualifying-diagnosis") is not None


def test_a_code_filed_under_the_wrong_standard_system_is_read_by_its_shape(knowledge):
    icd10 = "http://hl7.org/fhir/sid/icd-10-cm"
    assert knowledge.find([Code(icd10, "278860009")], "axial-pain") is not None  # SNOMED CT id
    assert knowledge.find([Code(icd10, "724.3")], "qualifying-diagnosis") is not None  # ICD-9-CM sciatica
    assert knowledge.find([Code("http://example.org/local", "M54.16")], "qualifying-diagnosis") is None


def test_a_bad_code_systems_file_stops_start_up_naming_file_and_field(cards):
    (cards / "code-systems.yaml").write_text("systems:\n  http://snomed.info/sct: {name: SNOMED, pattern: '('}\n")
    with pytest.raises(KnowledgeError, match=r"code-systems.yaml: systems.http://snomed.info/sct.pattern"):
        load_knowledge(cards)
