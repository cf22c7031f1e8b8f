"""Order annotation (CDS_SPINE_ANNOTATE_ORDERS): beside the cards, a system action that updates each draft ESI or
surgery ServiceRequest with the pathway's assessment, so that the EHR can keep it on the signed order, as Da Vinci
CRD's coverage-information and the PAMA guide's appropriateness rating do. The extension is profiled in
cards/structuredefinition-pathway-assessment.json."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..pathway import Assessment, Knowledge
from .models import Action

PATHWAY_ASSESSMENT = "https://cds-spine.org/fhir/StructureDefinition/pathway-assessment"


def _extension(assessment: Assessment, knowledge: Knowledge) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"url": "decision", "valueCode": assessment.decision.value},
        {"url": "conservativeDays", "valueInteger": assessment.history.days},
        {"url": "requiredDays", "valueInteger": assessment.required_days},
        *({"url": "finding", "valueCoding": {"system": knowledge.topics.system, "code": finding.code,
                                             "display": knowledge.topics.displays[finding.code]}}
          for finding in assessment.findings),
        {"url": "knowledgeVersion", "valueString": knowledge.version},
    ]
    return {"url": PATHWAY_ASSESSMENT, "extension": parts}


def order_annotations(assessments: Sequence[Assessment], draft_orders: Sequence[dict[str, Any]], knowledge: Knowledge,
                description: str) -> list[Action]:
    """An update of each assessed draft ServiceRequest: the resource as the EHR sent it, with the assessment's
    extension (replacing one an earlier call added)."""
    by_reference = {f"ServiceRequest/{resource['id']}": resource for resource in draft_orders
                    if resource.get("resourceType") == "ServiceRequest" and isinstance(resource.get("id"), str)}
    actions = []
    for assessment in assessments:
        resource = by_reference.get(assessment.order.reference or "")
        if resource is None:
            continue
        kept = [e for e in resource.get("extension", []) if not (isinstance(e, dict) and e.get("url") == PATHWAY_ASSESSMENT)]
        updated = {**resource, "extension": [*kept, _extension(assessment, knowledge)]}
        actions.append(Action(type="update", description=description, resource=updated))
    return actions
