"""Generated patients of a given size for the benchmark: a realistic mix, a small share relevant.

A chronic back-pain patient's record is mostly other care: the relevant share here is about 5 %
(spine diagnoses, physical therapy visits, NSAIDs, prior ESIs), the rest is unrelated conditions,
procedures, medications and referrals. Resources are shaped like an EHR's R4 output (about 1.5 KB
each: identifiers, references with displays, categories, the EHR's own code beside the standard one,
dosage instructions), since the cost of decoding them is the floor the service is compared with.
"""
from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

CPT = "http://www.ama-assn.org/go/cpt"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
TYPES = ("Condition", "Procedure", "MedicationStatement", "MedicationRequest", "ServiceRequest", "Observation")
KEYS = {"Condition": "conditions", "Procedure": "procedures", "MedicationStatement": "medicationStatements",
        "MedicationRequest": "medicationRequests", "ServiceRequest": "serviceRequests", "Observation": "observations"}
UNRELATED = {"Condition": [(ICD10, "I10", "Essential hypertension"), (ICD10, "E11.9", "Type 2 diabetes"),
                           (SNOMED, "195967001", "Asthma")],
             "Procedure": [(CPT, "99213", "Office visit"), (CPT, "80053", "Metabolic panel"),
                           (SNOMED, "73761001", "Colonoscopy")],
             "MedicationStatement": [(RXNORM, "314076", "lisinopril 10 MG Oral Tablet"),
                                     (RXNORM, "860975", "metformin 500 MG Oral Tablet")],
             "MedicationRequest": [(RXNORM, "617314", "atorvastatin 10 MG Oral Tablet"),
                                   (RXNORM, "197361", "amlodipine 5 MG Oral Tablet")],
             "ServiceRequest": [(CPT, "71046", "Chest X-ray"), (SNOMED, "306206005", "Referral to cardiology")],
             "Observation": [(LOINC, "8867-4", "Heart rate"), (LOINC, "29463-7", "Body weight"),
                             (LOINC, "2339-0", "Glucose [Mass/volume] in Blood")]}
RELEVANT = {"Condition": [(ICD10, "M54.16", "Radiculopathy, lumbar region"), (SNOMED, "278860009", "Chronic LBP")],
            "Procedure": [(CPT, "97110", "Therapeutic exercise"), (CPT, "64483", "Transforaminal ESI, lumbar")],
            "MedicationStatement": [(RXNORM, "197806", "Ibuprofen 600 MG Oral Tablet")],
            "MedicationRequest": [(RXNORM, "198014", "naproxen 500 MG Oral Tablet")],
            "ServiceRequest": [(SNOMED, "91251008", "Physical therapy procedure")],
            "Observation": [(LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")]}
RELEVANT_SHARE = 0.05


def _concept(coding: tuple[str, str, str], rng: random.Random) -> dict:
    """As EHRs send codes: the standard code plus the EHR's own code for the same concept."""
    system, code, display = coding
    local = {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.696580", "code": str(rng.getrandbits(24)),
             "display": display}
    return {"coding": [{"system": system, "code": code, "display": display}, local], "text": display}


def _status(system: str, code: str) -> dict:
    return {"coding": [{"system": f"http://terminology.hl7.org/CodeSystem/{system}", "version": "4.0.0",
                        "code": code, "display": code.capitalize()}], "text": code.capitalize()}


CLINICIANS = (("jane-morgan", "Jane Morgan, MD"), ("luis-ortega", "Luis Ortega, PT"), ("amina-yusuf", "Amina Yusuf, NP"),
              ("chen-wei", "Chen Wei, DO"))
"""A site's clinicians: the same few people, under one reference each, across every record."""


def _person(kind: str, rng: random.Random) -> dict:
    rng.getrandbits(64)  # the draw that once made a reference per record: kept, so a seed makes the records it made
    slug, name = rng.choice(CLINICIANS)
    return {"reference": f"{kind}/{slug}", "type": kind, "display": name}


def ehr_resource(kind: str, coding: tuple[str, str, str], patient: str, day: date, rng: random.Random) -> dict:
    """A resource shaped like an EHR's R4 output (about 1.5 KB): identifiers, references with displays,
    categories, several codings per concept; the elements the pathway reads are among them."""
    concept = _concept(coding, rng)
    when = f"{day.isoformat()}T{rng.randrange(7, 18):02d}:{rng.randrange(60):02d}:00Z"
    base = {"resourceType": kind, "id": f"e{uuid.UUID(int=rng.getrandbits(128)).hex}",
            "meta": {"versionId": "1", "lastUpdated": when,
                     "profile": [f"http://hl7.org/fhir/us/core/StructureDefinition/us-core-{kind.lower()}"]},
            "identifier": [{"use": "usual", "system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268",
                            "value": str(rng.getrandbits(40))}],
            "subject": {"reference": f"Patient/{patient}", "display": "Example, Pat"},
            "encounter": {"reference": f"Encounter/e{rng.getrandbits(64):x}", "identifier": {
                "use": "usual", "system": "urn:oid:1.2.840.114350.1.13.0.1.7.3.698084.8",
                "value": str(rng.getrandbits(32))}, "display": "Office Visit"}}
    if kind == "Condition":
        return {**base, "clinicalStatus": _status("condition-clinical", "active"),
                "verificationStatus": _status("condition-ver-status", "confirmed"),
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                          "code": "problem-list-item", "display": "Problem List Item"}],
                              "text": "Problem List Item"}],
                "code": concept, "onsetDateTime": when, "recordedDate": when,
                "recorder": _person("Practitioner", rng), "asserter": _person("Practitioner", rng)}
    if kind == "Procedure":
        return {**base, "status": "completed", "category": {"coding": [{
                    "system": SNOMED, "code": "103693007", "display": "Diagnostic procedure"}], "text": "Procedure"},
                "code": concept, "performedDateTime": when,
                "performer": [{"actor": _person("Practitioner", rng), "function": {"text": "Performing"}}],
                "location": {"reference": f"Location/e{rng.getrandbits(64):x}", "display": "Spine Clinic"},
                "reasonCode": [{"text": "Back pain"}]}
    if kind == "Observation":
        return {**base, "status": "final", "category": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs",
                    "display": "Vital Signs"}], "text": "Vital Signs"}],
                "code": concept, "effectiveDateTime": when, "issued": when, "performer": [_person("Practitioner", rng)],
                "valueQuantity": {"value": rng.randrange(0, 11), "unit": "{score}", "system": "http://unitsofmeasure.org",
                                  "code": "{score}"}}
    dosage = [{"text": "Take 1 tablet by mouth 3 times daily as needed", "asNeededBoolean": True,
               "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
               "route": {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}], "text": "oral"},
               "doseAndRate": [{"type": {"coding": [{"system": "http://epic.com/CodeSystem/dose-rate-type",
                                                      "code": "calculated", "display": "calculated"}]},
                                "doseQuantity": {"value": 1, "unit": "tablet", "code": "{tbl}",
                                                 "system": "http://unitsofmeasure.org"}}]}]
    if kind == "MedicationStatement":
        base["context"] = base.pop("encounter")  # R4 names it context here
        return {**base, "status": "completed", "medicationCodeableConcept": concept, "dosage": dosage,
                "effectivePeriod": {"start": day.isoformat(), "end": (day + timedelta(days=20)).isoformat()},
                "informationSource": _person("Practitioner", rng)}
    if kind == "MedicationRequest":
        return {**base, "status": "completed", "intent": "order", "category": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                    "code": "outpatient", "display": "Outpatient"}], "text": "Outpatient"}],
                "medicationCodeableConcept": concept, "authoredOn": when, "requester": _person("Practitioner", rng),
                "dosageInstruction": dosage, "dispenseRequest": {
                    "numberOfRepeatsAllowed": 1, "quantity": {"value": 30, "unit": "tablet"},
                    "expectedSupplyDuration": {"value": 30, "unit": "days", "system": "http://unitsofmeasure.org",
                                               "code": "d"}}}
    return {**base, "status": "completed", "intent": "order", "category": [{"coding": [{
                "system": SNOMED, "code": "3457005", "display": "Patient referral"}], "text": "Referral"}],
            "code": concept, "authoredOn": when, "occurrenceDateTime": when, "requester": _person("Practitioner", rng),
            "performer": [_person("Practitioner", rng)], "reasonCode": [{"text": "Back pain"}]}


def patient_record(size: int, seed: int = 7, today: date | None = None) -> dict[str, list[dict]]:
    """`size` resources, spread over the six record types, about 5 % relevant."""
    rng = random.Random(seed * 100_003 + size)
    today = today or date.today()
    patient = f"bench-{size}"
    record: dict[str, list[dict]] = {KEYS[kind]: [] for kind in TYPES}
    for i in range(size):
        kind = TYPES[i % len(TYPES)]
        pool = RELEVANT if rng.random() < RELEVANT_SHARE else UNRELATED
        day = today - timedelta(days=rng.randrange(1, 700))
        record[KEYS[kind]].append(ehr_resource(kind, rng.choice(pool[kind]), patient, day, rng))
    return record


def imaging(patient: str, seed: int = 7, today: date | None = None) -> dict[str, list[dict]]:
    """What the discovery's imaging queries return for this patient: the report of a lumbar MRI some months ago,
    and no ImagingStudy (an EHR sends every prefetch key it was asked for, empty when it holds nothing)."""
    rng = random.Random(seed)
    day = (today or date.today()) - timedelta(days=rng.randrange(30, 300))
    report = {"resourceType": "DiagnosticReport", "id": str(uuid.UUID(int=rng.getrandbits(128))), "status": "final",
              "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}],
              "code": {"coding": [{"system": CPT, "code": "72148", "display": "MRI lumbar spine without contrast"}]},
              "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": day.isoformat(),
              "issued": f"{day.isoformat()}T16:00:00Z", "conclusion": "L5-S1 disc protrusion contacting the left S1 root."}
    return {"imagingReports": [report], "imagingStudies": []}


def order_sign_request(size: int, seed: int = 7) -> dict:
    """An order-sign call on a lumbar ESI with the whole record prefetched."""
    record = patient_record(size, seed)
    patient = f"bench-{size}"
    order = {"resourceType": "ServiceRequest", "id": "esi-1", "status": "draft", "intent": "order",
             "code": {"coding": [{"system": CPT, "code": "64483"}]}, "subject": {"reference": f"Patient/{patient}"}}
    prefetch = {"patient": {"resourceType": "Patient", "id": patient},
                "user": {"resourceType": "Practitioner", "id": "bench", "name": [{"family": "Bench", "given": ["Ann"]}]}}
    record = {**record, **imaging(patient, seed)}
    for key, resources in record.items():
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
                         "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]}
    return {"hook": "order-sign", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/bench", "patientId": patient,
                        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}},
            "prefetch": prefetch}
