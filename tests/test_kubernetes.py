"""deploy/kubernetes/: every manifest valid against the Kubernetes schemas (kubernetes-validate, strict:
no unknown fields), and consistent with the service: settings it knows, probes it answers, the port it
binds, migrations by a Job while the replicas are told the schema is managed."""
from __future__ import annotations

import kubernetes_validate
import pytest
import yaml
from cli import ROOT

from cds_spine.settings import Settings

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
    assert kinds == {"ConfigMap", "Secret", "Job", "Deployment", "Service", "PodDisruptionBudget", "Ingress",
                     "NetworkPolicy", "CronJob"}


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


POD_TEMPLATES = [(d["kind"], d["spec"]["template"]["spec"]) for _, d in DOCUMENTS if d["kind"] in ("Deployment", "Job")] + [
    (d["kind"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]) for _, d in DOCUMENTS if d["kind"] == "CronJob"]
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                      "secret"}


def restricted_violations(pod: dict) -> list[str]:
    """The checks of the restricted Pod Security Standard (Kubernetes 1.30) a pod spec fails."""
    found = []
    security = pod.get("securityContext", {})
    if any(pod.get(flag) for flag in ("hostNetwork", "hostPID", "hostIPC")):
        found.append("host namespaces")
    found += [f"volume {v['name']}" for v in pod.get("volumes", []) if not set(v) - {"name"} <= RESTRICTED_VOLUMES]
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container.get("securityContext", {})
        name = container["name"]
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation must be false")
        if context.get("capabilities", {}).get("drop") != ["ALL"] or set(context.get("capabilities", {}).get(
                "add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities must drop ALL")
        if not context.get("runAsNonRoot", security.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot")
        if context.get("runAsUser", security.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = context.get("seccompProfile", security.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        if any(p.get("hostPort") for p in container.get("ports", [])):
            found.append(f"{name}: hostPort")
    return found


@pytest.mark.parametrize("kind, pod", POD_TEMPLATES, ids=[kind for kind, _ in POD_TEMPLATES])
def test_pods_meet_the_restricted_pod_security_standard(kind, pod):
    assert restricted_violations(pod) == []
    assert pod["automountServiceAccountToken"] is False  # the service never calls the Kubernetes API


def test_the_policy_check_catches_what_a_restricted_namespace_refuses():
    [(_, pod)] = [(k, p) for k, p in POD_TEMPLATES if k == "Deployment"]
    loose = {**pod, "securityContext": {"runAsNonRoot": True}}
    assert restricted_violations(loose) == ["cds-spine: seccompProfile must be RuntimeDefault or Localhost"]


def test_only_the_ingress_may_say_who_the_client_is():
    value = by_kind("ConfigMap")["data"]["CDS_SPINE_FORWARDED_ALLOW_IPS"]
    assert Settings(forwarded_allow_ips=value).forwarded_allow_ips == value  # addresses the service accepts
    with pytest.raises(ValueError, match="any client choose its own address"):
        Settings(forwarded_allow_ips="*")
    with pytest.raises(ValueError, match="every address"):
        Settings(forwarded_allow_ips="0.0.0.0/0")


def test_the_examples_route_tls_to_the_service_and_fence_its_pods():
    ingress = by_kind("Ingress")["spec"]
    assert ingress["tls"][0]["hosts"] == [rule["host"] for rule in ingress["rules"]]
    backends = {path["backend"]["service"]["name"] for rule in ingress["rules"] for path in rule["http"]["paths"]}
    assert backends == {by_kind("Service")["metadata"]["name"]}
    assert "/metrics" not in {path["path"] for rule in ingress["rules"] for path in rule["http"]["paths"]}
    policy = by_kind("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"]["matchLabels"].items() <= by_kind("Deployment")["spec"]["template"]["metadata"][
        "labels"].items()
    assert [port["port"] for rule in policy["ingress"] for port in rule["ports"]] == [Settings().port]
    # Issue 32: every egress rule names its destinations (no pod may reach any host on 443, which would widen
    # an SSRF), and the timeline every card links to (/app) is routed.
    assert all(rule.get("to") for rule in policy["egress"])
    assert all(peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0" for rule in policy["egress"] for peer in rule["to"])
    assert {"/cds-services", "/app", "/audit", "/dashboard"} <= {
        path["path"] for rule in ingress["rules"] for path in rule["http"]["paths"]}
