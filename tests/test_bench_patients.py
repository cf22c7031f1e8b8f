"""The benchmark's generated patients stay valid R4, mostly irrelevant, and answerable by the service."""
from __future__ import annotations

import json
import sys

from cli import ROOT
from fhir.resources.R4B import get_fhir_model_class
from support import call

sys.path.insert(0, str(ROOT))
from bench.patients import order_sign_request, patient_record  # noqa: E402
from cds_spine.fhir.relevance import relevance_filter  # noqa: E402


def test_generated_resources_are_valid_r4_and_about_5_percent_relevant(knowledge):
    resources = [r for rs in patient_record(400).values() for r in rs]
    for resource in resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    relevant = list(filter(relevance_filter(knowledge), resources))
    assert len(resources) == 400 and 0.02 <= len(relevant) / 400 <= 0.1
    assert 1200 <= len(json.dumps(resources)) / 400 <= 2200  # EHR-shaped, about 1.6 KB each


def test_benchmark_request_is_answered(client):
    response = call(client, "spine-pathway-order-sign", order_sign_request(100))
    assert response.status_code == 200


def test_benchmark_request_prefetches_every_key_discovery_asks_for(client):
    """As an EHR following discovery would: a key left out sends the service down its slower path (the FHIR
    server), which is not the call the benchmark measures."""
    asked = next(service["prefetch"] for service in client.get("/cds-services").json()["services"]
                 if service["id"] == "spine-pathway-order-sign")
    request = order_sign_request(10)
    assert "encounterId" not in request["context"]  # so no Encounter to prefetch
    assert set(asked) - set(request["prefetch"]) == {"encounter"}
