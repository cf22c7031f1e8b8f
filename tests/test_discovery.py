"""Checklist A1-A6: discovery, CORS preflights, and the health check."""
from __future__ import annotations

import re

import pytest
from support import (
    ORDER_SELECT,
    ORDER_SIGN,
    PATIENT_VIEW,
    _empty_values,
    call,
    hook_request,
)

from cds_spine import __version__

TOKEN = re.compile(r"\{\{([^}]*)\}\}")
ALLOWED_TOKENS = {"context.patientId", "context.userId", "context.encounterId", "userPractitionerId",
                  "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}


def test_discovery_lists_three_services_with_distinct_ids(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    services = response.json()["services"]
    assert {(s["id"], s["hook"]) for s in services} == {
        (ORDER_SELECT, "order-select"), (ORDER_SIGN, "order-sign"), (PATIENT_VIEW, "patient-view")}
    for service in services:
        assert service["title"] and service["description"]


def test_observations_are_asked_for_by_the_codes_of_their_value_sets(client, knowledge):
    """Not a patient's every vital sign: exactly the codes cards/ names for the scores and results."""
    for service in client.get("/cds-services").json()["services"]:
        path, query = service["prefetch"]["observations"].split("?")
        assert path == "Observation"
        patient, codes = query.split("&")
        assert patient == "patient={{context.patientId}}"
        asked = {tuple(item.split("|")) for item in codes.removeprefix("code=").split(",")}
        assert ("http://loinc.org", "72514-3") in asked and ("http://loinc.org", "4548-4") in asked
        assert asked == set(knowledge.observation_codes())


def test_spine_imaging_reports_are_asked_for_by_the_codes_of_their_value_set(client, knowledge):
    for service in client.get("/cds-services").json()["services"]:
        path, query = service["prefetch"]["imagingReports"].split("?")
        assert path == "DiagnosticReport"
        patient, codes = query.split("&")
        assert patient == "patient={{context.patientId}}"
        asked = {tuple(item.split("|")) for item in codes.removeprefix("code=").split(",")}
        assert ("http://www.ama-assn.org/go/cpt", "72148") in asked and asked == set(knowledge.imaging_codes())


def test_prefetch_templates_use_only_root_level_tokens(client):
    for service in client.get("/cds-services").json()["services"]:
        templates = service["prefetch"]
        assert templates["patient"] == "Patient/{{context.patientId}}"
        types = {template.split("?")[0] for key, template in templates.items() if key not in ("patient", "user")}
        record = {"Condition", "Procedure", "MedicationStatement", "MedicationRequest", "ServiceRequest", "Observation",
                  "DiagnosticReport", "ImagingStudy"}
        if service["hook"] == "patient-view":
            assert types == record
        else:  # who orders and where, for the audit's clinician and site strata
            assert types == record | {"Encounter"} and templates["user"] == "{{context.userId}}"
        for template in templates.values():
            assert set(TOKEN.findall(template)) <= ALLOWED_TOKENS
            assert template.count("{{") == template.count("}}") == 1


def test_discovery_has_no_null_or_empty_values(client):
    assert _empty_values(client.get("/cds-services").json()) == []


@pytest.mark.parametrize("service_id", [ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW])
def test_every_discovered_service_answers_a_minimal_call(client, service_id):
    hook = {ORDER_SELECT: "order-select", ORDER_SIGN: "order-sign", PATIENT_VIEW: "patient-view"}[service_id]
    assert call(client, service_id, hook_request(hook)).status_code == 200


@pytest.mark.parametrize("path,method", [("/cds-services", "GET"), (f"/cds-services/{ORDER_SELECT}", "POST"),
                                         (f"/cds-services/{ORDER_SIGN}/feedback", "POST")])
def test_preflight_needs_no_token_and_allows_auth_headers(client, path, method):
    response = client.options(path, headers={"Origin": "https://sandbox.cds-hooks.org",
                                             "Access-Control-Request-Method": method,
                                             "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://sandbox.cds-hooks.org")
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    allowed_methods = response.headers["access-control-allow-methods"]
    assert "GET" in allowed_methods and "POST" in allowed_methods


def test_configured_origins_are_the_only_ones_allowed(make_client):
    client = make_client(cors_origins="https://ehr.example.org")
    allowed = client.options("/cds-services", headers={"Origin": "https://ehr.example.org",
                                                       "Access-Control-Request-Method": "GET"})
    refused = client.options("/cds-services", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "GET"})
    assert allowed.headers["access-control-allow-origin"] == "https://ehr.example.org"
    assert "access-control-allow-origin" not in refused.headers


def test_error_responses_carry_cors_headers(client):
    response = client.post("/cds-services/does-not-exist", content=b"{}",
                           headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert response.status_code == 404
    assert response.headers["access-control-allow-origin"] in ("*", "https://sandbox.cds-hooks.org")


def test_healthz_reports_the_knowledge_version(client, knowledge):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "knowledgeVersion": knowledge.version}
