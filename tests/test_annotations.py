"""Order annotation (CDS_SPINE_ANNOTATE_ORDERS): beside the cards, a system action updates each draft ESI or
surgery ServiceRequest with the pathway's assessment, an extension profiled in cards/, and the updated resource
is still a valid FHIR ServiceRequest."""
from __future__ import annotations

import json

from cli import ROOT
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.structuredefinition import StructureDefinition
from support import ORDER_SELECT, ORDER_SIGN, call, esi_order, hook_request, pt_visits

URL = "https://cds-spine.org/fhir/StructureDefinition/pathway-assessment"
PROFILE = ROOT / "cards" / "structuredefinition-pathway-assessment.json"
BASELINE_NOTE = {"system": "https://cds-spine.org/fhir/CodeSystem/card-topic", "code": "esi-baseline-undocumented",
                 "display": "Baseline scores not documented"}


def annotation(action: dict) -> dict[str, list]:
    [extension] = [e for e in action["resource"]["extension"] if e["url"] == URL]
    parts: dict[str, list] = {}
    for part in extension["extension"]:
        [(kind, value)] = [(key, value) for key, value in part.items() if key.startswith("value")]
        parts.setdefault(part["url"], []).append((kind, value))
    return parts


def test_the_assessment_is_recorded_on_the_draft_order(make_client):
    client = make_client(annotate_orders=True)
    order = {**esi_order(), "extension": [{"url": "https://ehr.example.org/ext/priority", "valueCode": "routine"}]}
    body = call(client, ORDER_SELECT, hook_request(orders=[order])).json()
    [card] = body["cards"]
    [action] = body["systemActions"]
    assert action["type"] == "update" and action["description"]
    resource = action["resource"]
    ServiceRequest.model_validate(resource)
    assert {k: v for k, v in resource.items() if k != "extension"} == {k: v for k, v in order.items() if k != "extension"}
    assert resource["extension"][0] == order["extension"][0]  # the EHR's own extensions are kept
    parts = annotation(action)
    knowledge_version = client.get("/healthz").json()["knowledgeVersion"]
    assert parts == {"decision": [("valueCode", "not-met")], "conservativeDays": [("valueInteger", 0)],
                     "requiredDays": [("valueInteger", 28)],
                     "finding": [("valueCoding", card["source"]["topic"]), ("valueCoding", BASELINE_NOTE)],
                     "knowledgeVersion": [("valueString", knowledge_version)]}


def test_a_met_order_is_annotated_too_and_an_earlier_annotation_is_replaced(make_client):
    client = make_client(annotate_orders=True)
    first = call(client, ORDER_SIGN, hook_request("order-sign", procedures=pt_visits(60, 10))).json()
    [card] = first["cards"]  # criteria met, no baseline score: an info card asks for one
    assert card["indicator"] == "info" and card["source"]["topic"]["code"] == BASELINE_NOTE["code"]
    [action] = first["systemActions"]
    assert annotation(action)["decision"] == [("valueCode", "met")]
    assert annotation(action)["finding"] == [("valueCoding", BASELINE_NOTE)]
    again = call(client, ORDER_SIGN, hook_request("order-sign", orders=[action["resource"]])).json()
    [updated] = again["systemActions"]
    assert [e["url"] for e in updated["resource"]["extension"]].count(URL) == 1
    assert annotation(updated)["decision"] == [("valueCode", "not-met")]


def test_only_r4_service_requests_are_annotated_and_only_when_asked(make_client):
    stu3 = {**esi_order("proc-1", resource_type="ProcedureRequest")}
    annotated = make_client(annotate_orders=True)
    assert "systemActions" not in call(annotated, ORDER_SIGN, hook_request("order-sign", orders=[stu3])).json()
    plain = make_client()
    assert "systemActions" not in call(plain, ORDER_SIGN, hook_request("order-sign")).json()


def test_the_extension_follows_its_profile(make_client):
    profile = StructureDefinition.model_validate_json(PROFILE.read_bytes())
    assert profile.url == URL and profile.type == "Extension"
    slices = {e.sliceName: e for e in profile.differential.element if e.sliceName}
    types = {e.id.split(":")[1].split(".")[0]: e.type[0].code for e in profile.differential.element
             if e.id.endswith(".value[x]") and ":" in e.id}
    client = make_client(annotate_orders=True)
    [action] = call(client, ORDER_SIGN, hook_request("order-sign")).json()["systemActions"]
    parts = annotation(action)
    assert set(parts) <= set(slices)
    assert all(len(parts.get(name, [])) >= (slice_.min or 0) for name, slice_ in slices.items())
    for name, values in parts.items():
        assert all(kind == f"value{types[name][0].upper()}{types[name][1:]}" for kind, _ in values), name
    json.dumps(action)  # plain JSON
