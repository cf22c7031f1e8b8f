"""openapi.yaml describes the running app: same routes, and examples and live answers validate."""
from __future__ import annotations

import json

import pytest
import yaml
from cli import ROOT
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_spec
from openapi_spec_validator.readers import read_from_filename
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from support import ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW, call, ct_yes, hook_request

from cds_spine.app import http_routes

SPEC = yaml.safe_load((ROOT / "openapi.yaml").read_text())
REGISTRY = Registry().with_resource("urn:openapi", Resource.from_contents(SPEC, default_specification=DRAFT202012))


def validate(instance, schema: dict) -> None:
    schema = json.loads(json.dumps(schema).replace('"#/components', '"urn:openapi#/components'))
    Draft202012Validator(schema, registry=REGISTRY, format_checker=FormatChecker()).validate(instance)


def schema_of(path: str, method: str, status: str) -> dict:
    response = SPEC["paths"][path][method]["responses"][status]
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return next(iter(response["content"].values()))["schema"]


def test_the_spec_passes_a_standard_openapi_validator():
    validate_spec(read_from_filename(str(ROOT / "openapi.yaml"))[0])


def test_routes_match_the_spec(client):
    routes = {(route.path.replace("{service_id}", "{serviceId}").replace("{call_id}", "{callId}"), method.lower())
              for route in http_routes(client.app.routes) for method in route.methods - {"HEAD"}}
    documented = {(path, method) for path, item in SPEC["paths"].items() for method in item if method != "parameters"}
    assert routes == documented


def test_documented_service_ids_are_the_discovered_ones(client):
    ids = {s["id"] for s in client.get("/cds-services").json()["services"]}
    assert set(SPEC["components"]["parameters"]["ServiceId"]["schema"]["enum"]) == ids


def examples():
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            for name, example in body.get("examples", {}).items():
                yield f"{method} {path} request {name}", example["value"], body["schema"]
            for status, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json", {})
                for name, example in content.get("examples", {}).items():
                    yield f"{method} {path} {status} {name}", example["value"], content["schema"]
                if "example" in content:
                    yield f"{method} {path} {status}", content["example"], content["schema"]


@pytest.mark.parametrize("name,example,schema", list(examples()), ids=lambda v: v if isinstance(v, str) else "")
def test_examples_validate_against_their_schemas(name, example, schema):
    validate(example, schema)


def test_example_request_gets_the_example_answer_shape(client):
    operation = SPEC["paths"]["/cds-services/{serviceId}"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["examples"]["orderSign"]["value"]
    response = call(client, ORDER_SIGN, request)
    assert response.status_code == 200
    assert [c["summary"] for c in response.json()["cards"]] == [
        operation["responses"]["200"]["content"]["application/json"]["examples"]["warning"]["value"]["cards"][0][
            "summary"]]


def test_live_answers_validate(client):
    path = "/cds-services/{serviceId}"
    validate(client.get("/cds-services").json(), schema_of("/cds-services", "get", "200"))
    validate(client.get("/healthz").json(), schema_of("/healthz", "get", "200"))
    for service_id, request in [(ORDER_SELECT, hook_request()), (ORDER_SELECT, hook_request(procedures=ct_yes())),
                                (PATIENT_VIEW, hook_request("patient-view", procedures=ct_yes()))]:
        validate(request, SPEC["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])
        validate(call(client, service_id, request).json(), schema_of(path, "post", "200"))
    validate(call(client, ORDER_SELECT, hook_request(omit=("procedures",))).json(), schema_of(path, "post", "412"))
    validate(call(client, ORDER_SELECT, {"hook": "order-select"}).json(), schema_of(path, "post", "400"))
    validate(client.get(f"/cds-services/{ORDER_SELECT}").json(), schema_of(path, "post", "405"))


def test_live_errors_of_the_hardened_edge_validate(make_client):
    path = "/cds-services/{serviceId}"
    client = make_client(max_body_bytes=2048)
    too_large = client.post(f"/cds-services/{ORDER_SELECT}", content=b"[" + b"0," * 2000 + b"0]",
                            headers={"Content-Type": "application/json"})
    validate(too_large.json(), schema_of(path, "post", "413"))
    wrong_type = client.post(f"/cds-services/{ORDER_SELECT}", content=b"{}", headers={"Content-Type": "text/plain"})
    validate(wrong_type.json(), schema_of(path, "post", "415"))
    secured = make_client(auth="required", sandbox=True, public_base_url="https://cds.example.org")
    refused = secured.get("/cds-services")
    assert refused.status_code == 401
    validate(refused.json(), schema_of("/cds-services", "get", "401"))


def test_live_audit_answers_validate(make_client):
    from reporting import KEY, audit_settings, populate
    client = make_client(**audit_settings())
    populate(client)
    auth = {"Authorization": f"Bearer {KEY}"}
    for path, params in [("/audit/summary", {}), ("/audit/report", {"by": "clinician"}),
                         ("/audit/override-reasons", {}), ("/audit/decisions", {"pageSize": 3}),
                         ("/audit/measure-report", {"start": "2026-01-01", "end": "2030-12-31"}),
                         ("/audit/measure-report", {"start": "2026-01-01", "end": "2030-12-31", "type": "subject-list"}),
                         ("/audit/me", {}), ("/audit/measure", {}), ("/audit/override-comments", {}),
                         ("/audit/access-log", {})]:
        validate(client.get(path, params=params, headers=auth).json(), schema_of(path, "get", "200"))
    first = client.get("/audit/decisions", headers=auth).json()["items"][0]
    validate(client.get(f"/audit/decisions/{first['id']}", headers=auth).json(),
             schema_of("/audit/decisions/{callId}", "get", "200"))
    validate(client.get("/audit/summary").json(), schema_of("/audit/summary", "get", "401"))
