"""Test helpers: request builders relative to today, and a CDS Hooks response checker.

The checker is written from the spec (shared checklist §3, cases E33-E43), independently of the
service's own pydantic models, so a model that lets a bad card through fails here.
"""
from __future__ import annotations

import importlib.util
import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cds_spine.appstate import state_of
from cds_spine.audit.store import SqlAuditStore
from cds_spine.cdshooks.routes import HookState

SCENARIOS = Path(__file__).parent / "scenarios"
CPT = "http://www.ama-assn.org/go/cpt"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
RECORD_KEYS = ("conditions", "procedures", "medicationStatements", "medicationRequests", "serviceRequests")
ORDER_SELECT = "spine-pathway-order-select"
ORDER_SIGN = "spine-pathway-order-sign"
PATIENT_VIEW = "spine-pathway-patient-view"


def _load_build():
    spec = importlib.util.spec_from_file_location("scenario_build", SCENARIOS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scenario_build = _load_build()


def today() -> date:
    return datetime.now(UTC).date()


def day(offset: int) -> str:
    """An ISO date `offset` days from today (negative: in the past)."""
    return (today() + timedelta(days=offset)).isoformat()


def bundle(*resources: dict, bundle_type: str = "searchset") -> dict:
    return {"resourceType": "Bundle", "type": bundle_type, "total": len(resources),
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": r} for r in resources]}


def coded(system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], "text": display or code}


def condition(code: str, system: str = ICD10, status: str | None = "active", rid: str | None = None, **extra) -> dict:
    resource = {"resourceType": "Condition", "id": rid or f"cond-{code}", "code": coded(system, code, code),
                "subject": {"reference": "Patient/p1"}, **extra}
    if status:
        resource["clinicalStatus"] = coded("http://terminology.hl7.org/CodeSystem/condition-clinical", status)
    return resource


def procedure(code: str, performed: str, system: str = CPT, status: str = "completed", rid: str | None = None,
              **extra) -> dict:
    return {"resourceType": "Procedure", "id": rid or f"proc-{code}-{performed}", "status": status,
            "code": coded(system, code, f"procedure {code}"), "subject": {"reference": "Patient/p1"},
            "performedDateTime": performed, **extra}


def pt_visits(first: int, last: int, every: int = 7, code: str = "97110") -> list[dict]:
    """Weekly physical therapy visits from `first` to `last` days ago (both included)."""
    return [procedure(code, day(-offset)) for offset in range(first, last - 1, -every)]


def baseline_scores(days_ago: int = 10) -> list[dict]:
    """A pain score and an Oswestry index `days_ago` days ago: the baseline an ESI asks for (without one, an
    ESI whose criteria are met still gets an info card asking for it)."""
    return [{"resourceType": "Observation", "id": f"baseline-{code}", "status": "final",
             "code": coded("http://loinc.org", code), "subject": {"reference": "Patient/p1"},
             "effectiveDateTime": f"{day(-days_ago)}T10:00:00Z", "valueQuantity": {"value": value, "unit": "{score}"}}
            for code, value in (("72514-3", 6), ("97909-6", 40))]


def medication_statement(code: str | None, start: str, end: str | None, status: str = "completed",
                         text: str | None = None, rid: str | None = None) -> dict:
    concept = coded(RXNORM, code, text) if code else {"text": text}
    period = {"start": start, **({"end": end} if end else {})}
    return {"resourceType": "MedicationStatement", "id": rid or f"ms-{code}-{start}", "status": status,
            "medicationCodeableConcept": concept, "subject": {"reference": "Patient/p1"}, "effectivePeriod": period}


def esi_order(order_id: str = "esi-1", code: str = "64483", resource_type: str = "ServiceRequest",
              status: str = "draft") -> dict:
    return {"resourceType": resource_type, "id": order_id, "status": status, "intent": "order",
            "code": coded(CPT, code, f"ESI {code}"), "subject": {"reference": "Patient/p1"}}


def radiculopathy() -> dict:
    return condition("M54.16", onsetDateTime=day(-400))


def ct_yes() -> list[dict]:
    return pt_visits(90, 48)


def imaging_report(code: str, days_ago: int, status: str = "final") -> dict:
    """A report of spine MRI or CT (a CPT code of the spine-imaging value set) `days_ago` days ago."""
    return {"resourceType": "DiagnosticReport", "id": f"dr-{code}-{days_ago}", "status": status,
            "code": {"coding": [{"system": CPT, "code": code}], "text": f"MRI {code}"},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": day(-days_ago)}


def spine_mri() -> list[dict]:
    """MRI of the lumbar and the cervical spine 30 days ago: imaging on record for any order of the tests."""
    return [imaging_report("72148", 30), imaging_report("72141", 30)]


def hook_request(hook: str = "order-select", orders: list[dict] | None = None, selections: list[str] | None = None,
                 conditions: list[dict] | None = None, procedures: list[dict] | None = None,
                 medication_statements: list[dict] | None = None, medication_requests: list[dict] | None = None,
                 service_requests: list[dict] | None = None, observations: list[dict] | None = None,
                 imaging_reports: list[dict] | None = None, imaging_studies: list[dict] | None = None,
                 omit: tuple[str, ...] = (), **top: Any) -> dict:
    """ESI-R4 of the checklist by default: order-select on a lumbar ESI, all prefetch keys present, the spine imaged
    a month ago (`spine_mri`)."""
    orders = [esi_order()] if orders is None else orders
    context: dict[str, Any] = {"userId": "Practitioner/u1", "patientId": "p1"}
    if hook != "patient-view":
        context["draftOrders"] = bundle(*orders, bundle_type="collection")
    if hook == "order-select":
        context["selections"] = selections if selections is not None else [
            f"{o['resourceType']}/{o['id']}" for o in orders[:1]]
    records = {"conditions": [radiculopathy()] if conditions is None else conditions,
               "procedures": procedures or [], "medicationStatements": medication_statements or [],
               "medicationRequests": medication_requests or [], "serviceRequests": service_requests or [],
               "observations": observations or [],
               "imagingReports": spine_mri() if imaging_reports is None else imaging_reports,
               "imagingStudies": imaging_studies or []}
    prefetch = {"patient": {"resourceType": "Patient", "id": "p1"}}
    prefetch.update({key: bundle(*resources) for key, resources in records.items() if key not in omit})
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch, **top}


def authorization(token: str = "T") -> dict:
    return {"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "user/*.read",
            "subject": "svc"}


# --- the response checker ---------------------------------------------------------------------------

UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^>]*>")


def _empty_values(value: Any, path: str = "$") -> list[str]:
    if value is None or value == "" or value == [] or value == {}:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _empty_values(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _empty_values(v, f"{path}[{i}]")]
    return []


def _absolute_https(url: Any) -> bool:
    parts = urlsplit(url) if isinstance(url, str) else None
    return bool(parts and parts.scheme == "https" and parts.netloc)


def draft_order_references(request: dict) -> set[str]:
    entries = ((request.get("context") or {}).get("draftOrders") or {}).get("entry") or []
    resources = [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    return {f"{r.get('resourceType')}/{r.get('id')}" for r in resources}


def problems_in_response(body: Any, request: dict) -> list[str]:
    problems = []
    if not isinstance(body, dict) or not isinstance(body.get("cards"), list):
        return ["top level must be an object with a cards array"]
    if "systemActions" in body and not body["systemActions"]:
        problems.append("systemActions present but empty")
    problems += [f"empty or null value at {p}" for key, value in body.items() if key != "cards"
                 for p in _empty_values(value, f"$.{key}")]
    uuids: list[str] = []
    drafts = draft_order_references(request)
    for i, card in enumerate(body["cards"]):
        where = f"cards[{i}]"
        problems += [f"empty or null value at {p}" for p in _empty_values(card, where)]
        summary = card.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) >= 140:
            problems.append(f"{where}.summary missing or not under 140 characters")
        if card.get("indicator") not in ("info", "warning", "critical"):
            problems.append(f"{where}.indicator invalid")
        source = card.get("source") or {}
        if not isinstance(source.get("label"), str) or not source["label"]:
            problems.append(f"{where}.source.label missing")
        for key in ("url", "icon"):
            if key in source and not _absolute_https(source[key]):
                problems.append(f"{where}.source.{key} not an absolute https URL")
        if "detail" in card and (not isinstance(card["detail"], str) or HTML_TAG.search(card["detail"])):
            problems.append(f"{where}.detail must be Markdown without HTML")
        suggestions = card.get("suggestions")
        if suggestions:
            if card.get("selectionBehavior") not in ("at-most-one", "any"):
                problems.append(f"{where}.selectionBehavior missing with suggestions")
            if card.get("selectionBehavior") == "at-most-one" and sum(
                    bool(s.get("isRecommended")) for s in suggestions) > 1:
                problems.append(f"{where}: more than one recommended suggestion with at-most-one")
            for j, suggestion in enumerate(suggestions):
                swhere = f"{where}.suggestions[{j}]"
                if not suggestion.get("label"):
                    problems.append(f"{swhere}.label missing")
                if "uuid" not in suggestion:
                    problems.append(f"{swhere}.uuid missing")
                else:
                    uuids.append(suggestion["uuid"])
                for k, action in enumerate(suggestion.get("actions") or []):
                    awhere = f"{swhere}.actions[{k}]"
                    if action.get("type") not in ("create", "update", "delete") or not action.get("description"):
                        problems.append(f"{awhere}: type or description invalid")
                    elif action["type"] == "delete":
                        if "resource" in action or action.get("resourceId") not in drafts:
                            problems.append(f"{awhere}: delete must name a draft order by resourceId")
                    elif not (action.get("resource") or {}).get("resourceType"):
                        problems.append(f"{awhere}: {action['type']} needs a resource with resourceType")
        for j, reason in enumerate(card.get("overrideReasons") or []):
            if not all(reason.get(key) for key in ("code", "system", "display")):
                problems.append(f"{where}.overrideReasons[{j}] needs code, system and display")
        for j, link in enumerate(card.get("links") or []):
            if not link.get("label") or not link.get("url") or link.get("type") not in ("absolute", "smart"):
                problems.append(f"{where}.links[{j}] needs label, url and a valid type")
            if "appContext" in link and link.get("type") != "smart":
                problems.append(f"{where}.links[{j}].appContext only allowed on smart links")
            if link.get("type") == "absolute" and not _absolute_https(link.get("url")):
                problems.append(f"{where}.links[{j}].url not an absolute https URL")
        if card.get("indicator") == "warning" and "uuid" not in card:
            problems.append(f"{where}: warning card without uuid")
        if "uuid" in card:
            uuids.append(card["uuid"])
    problems += [f"not an RFC 4122 uuid: {u}" for u in uuids if not UUID_PATTERN.match(str(u))]
    if len(uuids) != len(set(uuids)):
        problems.append("uuids are not unique within the response")
    return problems


def hook_state(client) -> HookState:
    """What the app's CDS Hooks routes run with (the app has started)."""
    return state_of(client.app, HookState)


def audit_store(client) -> SqlAuditStore:
    return state_of(client.app, SqlAuditStore)


def call(client, service_id: str, request: dict, **kwargs):
    """POST a service call; every 200 answer must pass the spec checks (E33-E43)."""
    response = client.post(f"/cds-services/{service_id}", content=json.dumps(request),
                           headers={"Content-Type": "application/json", **kwargs.pop("headers", {})}, **kwargs)
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code == 200:
        problems = problems_in_response(response.json(), request)
        assert not problems, problems
    return response


def outcome_expressions(response) -> list[str]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return [expression for issue in body["issue"] for expression in issue.get("expression", [])]


def indicators(response) -> list[str]:
    return [card["indicator"] for card in response.json()["cards"]]


# --- the scenarios' expectations (shared/scenarios/README.md) ----------------------------------------

def meets(expectation: str, indicators: list[str]) -> bool:
    alert = "warning" in indicators or "critical" in indicators
    return {"warning": "warning" in indicators,
            "info": "info" in indicators and not alert,
            "none": not indicators,
            "no-warning": not alert,
            "alert": alert}[expectation]


def matches(pattern: dict, card: dict) -> bool:
    """A card matches a pattern of shared/scenarios/README.md: every key given must hold."""
    texts = {"summary": [card["summary"]],
             "text": [card["summary"], card.get("detail", ""), card["source"]["label"]],
             "suggestion": [s["label"] for s in card.get("suggestions") or ()],
             "override": [r["display"] for r in card.get("overrideReasons") or ()]}
    return all(card["indicator"] == value if key == "indicator" else
               any(re.search(value, text, re.IGNORECASE) for text in texts[key]) for key, value in pattern.items())


def meets_expectation(expectation: str | dict, cards: list[dict]) -> bool:
    if isinstance(expectation, str):
        return meets(expectation, [card["indicator"] for card in cards])
    return (meets(expectation["is"], [card["indicator"] for card in cards])
            and all(any(matches(pattern, card) for card in cards) for pattern in expectation.get("with", ()))
            and not any(matches(pattern, card) for pattern in expectation.get("without", ()) for card in cards))
