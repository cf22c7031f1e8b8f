"""Generated patients of a given size for the benchmark: a realistic mix, a small share relevant.

A chronic back-pain patient's record is mostly other care: the relevant share here is about 5 %
(spine diagnoses, physical therapy visits, NSAIDs, a prior ESI), the rest is unrelated conditions,
procedures, medications and referrals, shaped like real EHR resources (with meta, identifiers, text).
"""
from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

CPT = "http://www.ama-assn.org/go/cpt"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TYPES = ("Condition", "Procedure", "MedicationStatement", "MedicationRequest", "ServiceRequest")
KEYS = {"Condition": "conditions", "Procedure": "procedures", "MedicationStatement": "medicationStatements",
        "MedicationRequest": "medicationRequests", "ServiceRequest": "serviceRequests"}
UNRELATED = {"Condition": [(ICD10, "I10", "Essential hypertension"), (ICD10, "E11.9", "Type 2 diabetes"),
                           (SNOMED, "195967001", "Asthma")],
             "Procedure": [(CPT, "99213", "Office visit"), (CPT, "80053", "Metabolic panel"),
                           (SNOMED, "73761001", "Colonoscopy")],
             "MedicationStatement": [(RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
                                     (RXNORM, "860975", "metformin 500 MG Oral Tablet")],
             "MedicationRequest": [(RXNORM, "617314", "atorvastatin 10 MG Oral Tablet"),
                                   (RXNORM, "197361", "amlodipine 5 MG Oral Tablet")],
             "ServiceRequest": [(CPT, "71046", "Chest X-ray"), (SNOMED, "306206005", "Referral to cardiology")]}
RELEVANT = {"Condition": [(ICD10, "M54.16", "Radiculopathy, lumbar region"), (SNOMED, "278860009", "Chronic LBP")],
            "Procedure": [(CPT, "97110", "Therapeutic exercise"), (CPT, "64483", "Transforaminal ESI, lumbar")],
            "MedicationStatement": [(RXNORM, "197806", "Ibuprofen 600 MG Oral Tablet")],
            "MedicationRequest": [(RXNORM, "198014", "naproxen 500 MG Oral Tablet")],
            "ServiceRequest": [(SNOMED, "91251008", "Physical therapy procedure")]}
RELEVANT_SHARE = 0.05


def _resource(kind: str, coding: tuple[str, str, str], patient: str, day: date, rng: random.Random) -> dict:
    system, code, display = coding
    concept = {"coding": [{"system": system, "code": code, "display": display}], "text": display}
    base = {"resourceType": kind, "id": str(uuid.UUID(int=rng.getrandbits(128))),
            "meta": {"versionId": "1", "lastUpdated": f"{day.isoformat()}T10:00:00Z"},
            "identifier": [{"system": "urn:oid:1.2.840.114350", "value": str(rng.getrandbits(40))}],
            "subject": {"reference": f"Patient/{patient}"}}
    when = f"{day.isoformat()}T10:00:00Z"
    if kind == "Condition":
        return {**base, "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                 "condition-clinical", "code": "active"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                          "code": "problem-list-item"}]}],
                "code": concept, "onsetDateTime": when, "recordedDate": when}
    if kind == "Procedure":
        return {**base, "status": "completed", "code": concept, "performedDateTime": when,
                "encounter": {"reference": f"Encounter/{rng.getrandbits(32)}"}}
    if kind == "MedicationStatement":
        return {**base, "status": "completed", "medicationCodeableConcept": concept,
                "effectivePeriod": {"start": day.isoformat(), "end": (day + timedelta(days=20)).isoformat()}}
    if kind == "MedicationRequest":
        return {**base, "status": "completed", "intent": "order", "medicationCodeableConcept": concept,
                "authoredOn": when, "dispenseRequest": {"numberOfRepeatsAllowed": 1, "expectedSupplyDuration": {
                    "value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}}}
    return {**base, "status": "completed", "intent": "order", "code": concept, "authoredOn": when,
            "occurrenceDateTime": when}


def patient_record(size: int, seed: int = 7, today: date | None = None) -> dict[str, list[dict]]:
    """`size` resources, spread over the five record types, about 5 % relevant."""
    rng = random.Random(seed * 100_003 + size)
    today = today or date.today()
    patient = f"bench-{size}"
    record: dict[str, list[dict]] = {KEYS[kind]: [] for kind in TYPES}
    for i in range(size):
        kind = TYPES[i % len(TYPES)]
        pool = RELEVANT if rng.random() < RELEVANT_SHARE else UNRELATED
        day = today - timedelta(days=rng.randrange(1, 700))
        record[KEYS[kind]].append(_resource(kind, rng.choice(pool[kind]), patient, day, rng))
    return record


def order_sign_request(size: int, seed: int = 7) -> dict:
    """An order-sign call on a lumbar ESI with the whole record prefetched."""
    record = patient_record(size, seed)
    patient = f"bench-{size}"
    order = {"resourceType": "ServiceRequest", "id": "esi-1", "status": "draft", "intent": "order",
             "code": {"coding": [{"system": CPT, "code": "64483"}]}, "subject": {"reference": f"Patient/{patient}"}}
    prefetch = {"patient": {"resourceType": "Patient", "id": patient}}
    for key, resources in record.items():
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
                         "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]}
    return {"hook": "order-sign", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/bench", "patientId": patient,
                        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}},
            "prefetch": prefetch}
