"""The three services this CDS Service offers, as discovery describes them."""
from __future__ import annotations

from ..fhir.people import ORDERER_QUERIES
from ..fhir.prefetch import PATIENT_QUERY, RECORD_QUERIES
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
            description=("When an epidural steroid injection or spine surgery order is selected, checks the record "
                         "for conservative therapy first (physical therapy, exercise, medications), red flags, "
                         "injection frequency and imaging guidance."),
            prefetch=ORDER_PREFETCH,
        ),
        Service(
            hook="order-sign", id=ORDER_SIGN,
            title="Spine pathway: conservative therapy before ESI or spine surgery (order sign)",
            description=("When epidural steroid injection or spine surgery orders are signed, warns if conservative "
                         "therapy is not documented for long enough, if injections are too frequent, or if imaging "
                         "guidance is missing; a red flag waives the conservative-therapy requirement."),
            prefetch=ORDER_PREFETCH,
        ),
        Service(
            hook="patient-view", id=PATIENT_VIEW,
            title="Spine pathway: conservative therapy summary",
            description=("For patients with a spine diagnosis, summarizes the conservative therapy on record and "
                         "whether ESI and spine-surgery criteria are met today."),
            prefetch=PREFETCH,
        ),
    )
}

DISCOVERY = Discovery(services=list(SERVICES.values())).model_dump(mode="json", exclude_none=True)
