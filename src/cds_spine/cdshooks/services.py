"""The three services this CDS Service offers, as discovery describes them."""
from __future__ import annotations

from typing import Any

from ..fhir.people import ORDERER_QUERIES
from ..fhir.prefetch import PATIENT_QUERY, RECORD_QUERIES, optional_queries
from ..pathway import Knowledge
from ..service_ids import ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW
from .models import Discovery, Service

PREFETCH = {**PATIENT_QUERY, **RECORD_QUERIES}
ORDER_PREFETCH = {**PREFETCH, **ORDERER_QUERIES}
"""Order services also ask who orders and where (for the audit's clinician and site strata)."""

SERVICES = {
    service.id: service
    for service in (
        Service(
            hook="order-select", id=ORDER_SELECT,
            title="Spine pathway: conservative therapy before ESI or spine surgery (order select)",
            description=("When an epidural steroid injection, regenerative injection or spine surgery order is "
                         "selected, checks the record for conservative therapy first (physical therapy, exercise, "
                         "medications), red flags, injection frequency, imaging guidance and the response to the "
                         "last injection."),
            prefetch=ORDER_PREFETCH,
        ),
        Service(
            hook="order-sign", id=ORDER_SIGN,
            title="Spine pathway: conservative therapy before ESI or spine surgery (order sign)",
            description=("When epidural steroid injection, regenerative injection or spine surgery orders are signed, "
                         "warns if conservative therapy is not documented for long enough, if injections are too "
                         "frequent or did not help, if imaging guidance is missing, or if a regenerative injection "
                         "comes before any ESI; a red flag waives the conservative-therapy requirement."),
            prefetch=ORDER_PREFETCH,
        ),
        Service(
            hook="patient-view", id=PATIENT_VIEW,
            title="Spine pathway: conservative therapy summary",
            description=("For patients with a spine diagnosis, summarizes the conservative therapy on record and "
                         "where each step (ESI, regenerative injection, surgery) stands today."),
            prefetch=PREFETCH,
        ),
    )
}



def discovery(knowledge: Knowledge) -> dict[str, Any]:
    """What GET /cds-services answers: each service, its prefetch with the Observations and imaging-report
    queries of the knowledge (the codes of the value sets cards/ names)."""
    optional = optional_queries(knowledge)
    services = [service.model_copy(update={"prefetch": {**(service.prefetch or {}), **optional}})
                for service in SERVICES.values()]
    return Discovery(services=services).model_dump(mode="json", exclude_none=True)
