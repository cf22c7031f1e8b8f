"""The patient banner: who the page is about (name, birth date, sex, id), read from the EHR's Patient with the app's
token, so that a clinician can see at a glance that the timeline is of the patient in front of them. Shown unless
the EHR says it shows the patient itself (need_patient_banner false)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..fhir.client import FhirError
from .sessions import Session
from .state import SmartState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatientBanner:
    id: str
    name: str | None = None
    birth_date: str | None = None
    gender: str | None = None


def _name(patient: dict[str, Any]) -> str | None:
    names = [n for n in patient.get("name") or () if isinstance(n, dict)]
    chosen = next((n for n in names if n.get("use") in ("official", "usual")), names[0] if names else None)
    if not chosen:
        return None
    if isinstance(chosen.get("text"), str) and chosen["text"].strip():
        return str(chosen["text"]).strip()
    given = [g for g in chosen.get("given") or () if isinstance(g, str)]
    family = chosen.get("family") if isinstance(chosen.get("family"), str) else None
    return " ".join([*given, *([family] if family else [])]) or None


async def patient_banner(state: SmartState, session: Session) -> PatientBanner:
    """The session's patient as the EHR names them; the id alone when the Patient cannot be read."""
    try:
        found = await state.fhir.search(session.iss, f"Patient?_id={quote(session.patient, safe='')}",
                                        session.access_token, lambda r: r.get("resourceType") == "Patient")
    except FhirError as error:
        log.warning("patient banner: the Patient could not be read (%s)", error.kind)
        found = []
    patient = next((p for p in found if p.get("id") == session.patient), None)
    if patient is None:
        return PatientBanner(session.patient)
    birth = patient.get("birthDate")
    gender = patient.get("gender")
    return PatientBanner(session.patient, _name(patient), birth if isinstance(birth, str) else None,
                         gender if isinstance(gender, str) else None)
