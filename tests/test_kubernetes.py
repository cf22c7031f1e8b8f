"""deploy/kubernetes/: every manifest valid against the Kubernetes schemas (kubernetes-validate, strict:
no unknown fields), and consistent with the service: settings it knows, probes it answers, the port it
binds, migrations by a Job while the replicas are told the schema is managed."""
from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from cds_spine.settings import Settings
from cli import ROOT

KUBERNETES_VERSION = "1.30.0"
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
DOCUMENTS = [(path.name, document) for path in MANIFESTS for document in yaml.safe_load_all(path.read_text())]
SETTINGS = {f"CDS_SPINE_{name.upper()}" for name in Settings.model_fields}


def by_kind(kind: str) -> dict:
    [document] = [d for _, d in DOCUMENTS if d["kind"] == kind]
    return document


@pytest.mark.parametrize("name, document", DOCUMENTS, ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in DOCUMENTS])
def test_manifest_is_valid_against_the_kubernetes_schema(name, document):
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_set_of_manifests_is_complete():
    kinds = {d["kind"] for _, d in DOCUMENTS}
    assert kinds == {"ConfigMap", "Secret", "Job", "Deployment", "Service", "PodDisruptionBudget"}


def test_manifests_use_only_settings_the_service_knows():
    names = set(by_kind("ConfigMap")["data"])
    names |= {key for _, d in DOCUMENTS if d["kind"] == "Secret" and d["metadata"]["name"] == "cds-spine"
              for key in d["stringData"]}
    assert names <= SETTINGS, names - SETTINGS
    assert by_kind("ConfigMap")["data"]["CDS_SPINE_SCHEMA_MANAGED"] == "true"


def test_probes_port_and_migration_job_match_the_service(client):
    [container] = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == Settings().port == 8080
    assert client.get(container["readinessProbe"]["httpGet"]["path"]).status_code == 200
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    [job] = by_kind("Job")["spec"]["template"]["spec"]["containers"]
    assert job["command"] == ["cds-spine", "migrate"] and job["image"] == container["image"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "trust")["mountPath"]
    assert by_kind("ConfigMap")["data"]["CDS_SPINE_TRUSTED_CLIENTS"].startswith(mount + "/")
