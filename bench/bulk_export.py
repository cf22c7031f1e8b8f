"""Synthetic FHIR Bulk Data exports at a chosen scale, for the bulk-audit tests and benchmark.

    python -m bench.bulk_export --patients 10000 --out /tmp/export [--seed 7] [--files-per-type 2]

Each patient has a Patient resource, EHR-shaped unrelated care (bench/patients.py: conditions, visits,
drugs, referrals, and Encounters, which the audit does not read) and, for a share of them, a spine
story: a back-pain diagnosis (radicular, or axial only), conservative care in one of several patterns
(none, a short course, an adequate one; visits as Procedures, drugs as MedicationRequests or
MedicationStatements, some by reference to a Medication, referrals as ServiceRequests), ESIs (guided or
not, some repeated too soon) and spine surgeries, and red flags for a few. Some procedures are not
completed. Files are gzip NDJSON, one or more per type, with the `$export` manifest.

The codes are the standard codes a record carries; tests check each is in the value set it stands for.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from bench.patients import CPT, ICD10, LOINC, RXNORM, SNOMED, UNRELATED, ehr_resource

TYPES = ("Patient", "Encounter", "Condition", "Procedure", "MedicationRequest", "MedicationStatement",
         "ServiceRequest", "Observation", "ImagingStudy", "Medication")
# (system, code, display) and the value set each stands for (checked by tests/test_bulk.py)
RADICULOPATHY = [(ICD10, "M54.16", "Radiculopathy, lumbar region"), (ICD10, "M51.16",
                 "Intervertebral disc disorders with radiculopathy, lumbar region"),
                 (ICD10, "M48.062", "Spinal stenosis, lumbar region with neurogenic claudication")]
AXIAL = [(SNOMED, "278860009", "Chronic low back pain")]
RED_FLAGS = [(ICD10, "G83.4", "Cauda equina syndrome"), (ICD10, "M48.50", "Collapsed vertebra, site unspecified")]
THERAPY = [(CPT, "97110", "Therapeutic exercise"), (SNOMED, "91251008", "Physical therapy procedure")]
NSAIDS = [(RXNORM, "197806", "Ibuprofen 600 MG Oral Tablet"), (RXNORM, "198014", "naproxen 500 MG Oral Tablet")]
REFERRAL = [(SNOMED, "91251008", "Physical therapy procedure")]
GUIDED_ESI = [(CPT, "64483", "Transforaminal epidural injection with imaging, lumbar"),
              (CPT, "62323", "Interlaminar epidural injection with imaging, lumbar")]
UNGUIDED_ESI = [(CPT, "62322", "Interlaminar epidural injection without imaging, lumbar")]
REGENERATIVE = [(CPT, "0627T", "Percutaneous injection of allogeneic cellular product, intervertebral disc, lumbar"),
                (CPT, "0232T", "Injection(s), platelet rich plasma, any site")]
SPINE_SITE = [(SNOMED, "122496007", "Lumbar spine structure (body structure)")]
"""PRP's code is for any site: its body site places it in the pathway."""
SURGERY = [(CPT, "63030", "Laminotomy with decompression of nerve root, lumbar"),
           (CPT, "22612", "Arthrodesis, posterior, lumbar"), (CPT, "63047", "Laminectomy, facetectomy, lumbar")]
PAIN = [(LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")]
DISABILITY = [(LOINC, "97909-6", "Oswestry disability index score ODI")]
SMOKING = [(LOINC, "72166-2", "Tobacco smoking status")]
SMOKER = [(SNOMED, "449868002", "Smokes tobacco daily (finding)")]
HBA1C = [(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")]
PROMIS_FUNCTION = [(LOINC, "91721-1", "PROMIS physical function - version 2.0 T-score")]
COTININE = [(LOINC, "10366-3", "Cotinine [Mass/volume] in Urine")]
CANCER_HISTORY = [(ICD10, "Z85.3", "Personal history of malignant neoplasm of breast")]
SPINE_MRI = [(SNOMED, "241645008", "Magnetic resonance imaging of spine (procedure)")]
MR = [("http://dicom.nema.org/resources/ontology/DCM", "MR", "Magnetic Resonance")]
"""An ImagingStudy as Synthea's low back pain module writes one: the region is the series' body site."""
ANTICOAGULANTS = [(RXNORM, "1364445", "apixaban 5 MG Oral Tablet"), (RXNORM, "309362", "clopidogrel 75 MG Oral Tablet")]
VALUESETS = {"score-pain-severity": PAIN, "score-disability": DISABILITY, "tobacco-smoking-status": SMOKING,
             "current-tobacco-smoker": SMOKER, "hemoglobin-a1c": HBA1C,
             "score-promis-physical-function": PROMIS_FUNCTION, "cotinine-level": COTININE,
             "qualifying-diagnosis": RADICULOPATHY, "axial-pain": AXIAL,
             "modality-physical-therapy": THERAPY, "medication-nsaid": NSAIDS, "esi-order": GUIDED_ESI + UNGUIDED_ESI,
             "spine-surgery-order": SURGERY, "regenerative-injection-order": REGENERATIVE, "spine-body-site": SPINE_SITE, "red-flag-cauda-equina-cord-compression": RED_FLAGS[:1],
             "red-flag-spinal-fracture": RED_FLAGS[1:], "image-first-cancer": CANCER_HISTORY,
             "spine-imaging": SPINE_MRI, "cross-sectional-modality": MR, "spine-imaging-body-site": SPINE_SITE}


@dataclass(frozen=True)
class Shape:
    """The mix: share of patients with a spine story, and within it the patterns' shares."""

    back_pain: float = 0.3
    unrelated_per_patient: int = 30
    encounters_per_patient: int = 6
    no_conservative: float = 0.2
    short_conservative: float = 0.25
    axial_only: float = 0.1
    red_flag: float = 0.05
    esi: float = 0.6
    second_esi: float = 0.3
    unguided: float = 0.15
    surgery: float = 0.25
    not_completed: float = 0.05
    medication_by_reference: float = 0.3
    scores: float = 0.6
    relieved: float = 0.5
    promis: float = 0.3
    smoker: float = 0.3
    cotinine: float = 0.3
    hba1c: float = 0.6
    regenerative: float = 0.15
    cancer_history: float = 0.08
    anticoagulant: float = 0.08
    imaged: float = 0.7


class _Patient:
    def __init__(self, patient_id: str, rng: random.Random, today: date) -> None:
        self.id, self.rng, self.today = patient_id, rng, today
        self.resources: dict[str, list[dict]] = {kind: [] for kind in TYPES}

    def add(self, kind: str, coding: tuple[str, str, str], day: date, **changes: object) -> dict:
        resource = ehr_resource(kind, coding, self.id, day, self.rng)
        resource.update(changes)
        self.resources[kind].append(resource)
        return resource

    def score(self, coding: tuple[str, str, str], day: date, value: float) -> None:
        self.add("Observation", coding, day, valueQuantity={"value": value, "unit": "{score}",
                                                             "system": "http://unitsofmeasure.org", "code": "{score}"})

    def study(self, day: date) -> None:
        """An MRI of the lumbar spine, shaped as Synthea writes one."""
        self.resources["ImagingStudy"].append({
            "resourceType": "ImagingStudy", "id": f"i{self.rng.getrandbits(64):x}", "status": "available",
            "subject": {"reference": f"Patient/{self.id}"}, "started": f"{day.isoformat()}T09:00:00Z",
            "numberOfSeries": 1, "numberOfInstances": 1, "procedureCode": [{"coding": [_coding(SPINE_MRI[0])]}],
            "series": [{"uid": f"1.2.840.99999.{self.rng.getrandbits(32)}", "number": 1, "modality": _coding(MR[0]),
                        "bodySite": _coding(SPINE_SITE[0]), "numberOfInstances": 1}]})

    def medication(self, coding: tuple[str, str, str], day: date, days: int, by_reference: bool) -> None:
        kind = self.rng.choice(["MedicationRequest", "MedicationStatement"])
        resource = self.add(kind, coding, day)
        if kind == "MedicationRequest":
            resource["dispenseRequest"]["expectedSupplyDuration"]["value"] = days
            resource["dispenseRequest"]["numberOfRepeatsAllowed"] = 0
        else:
            resource["effectivePeriod"] = {"start": day.isoformat(), "end": (day + timedelta(days=days)).isoformat()}
        if by_reference:
            medication_id = f"med-{coding[1]}"
            resource["medicationReference"] = {"reference": f"Medication/{medication_id}", "display": coding[2]}
            del resource["medicationCodeableConcept"]


def _coding(codes: tuple[str, str, str]) -> dict:
    return dict(zip(("system", "code", "display"), codes, strict=True))


def _spine_story(patient: _Patient, shape: Shape) -> None:
    rng, today = patient.rng, patient.today
    onset = today - timedelta(days=rng.randrange(650, 1500))  # the whole story lies in the past
    diagnosis = rng.choice(AXIAL if rng.random() < shape.axial_only else RADICULOPATHY)
    patient.add("Condition", diagnosis, onset)
    pattern = rng.random()
    day = onset + timedelta(days=rng.randrange(0, 14))
    if rng.random() < 0.5:
        patient.add("ServiceRequest", REFERRAL[0], day, status=rng.choice(["completed", "active"]))
    if pattern >= shape.no_conservative:
        weeks = 2 if pattern < shape.no_conservative + shape.short_conservative else rng.randrange(6, 14)
        therapy = rng.choice(THERAPY)
        for week in range(weeks):
            patient.add("Procedure", therapy, day + timedelta(days=7 * week))
        patient.medication(rng.choice(NSAIDS), day, 7 * weeks, rng.random() < shape.medication_by_reference)
        day += timedelta(days=7 * weeks)
    if rng.random() < shape.red_flag:
        patient.add("Condition", rng.choice(RED_FLAGS), day + timedelta(days=rng.randrange(0, 30)))
    if rng.random() < shape.esi:
        day += timedelta(days=rng.randrange(7, 60))
        code = rng.choice(UNGUIDED_ESI if rng.random() < shape.unguided else GUIDED_ESI)
        scored = rng.random() < shape.scores
        if scored:  # baseline scores, and the response to the injection 3 to 8 weeks on
            pain, disability = rng.randrange(5, 10), rng.randrange(30, 70)
            patient.score(PAIN[0], day - timedelta(days=2), pain)
            relieved, later = rng.random() < shape.relieved, day + timedelta(days=rng.randrange(21, 56))
            if rng.random() < shape.promis:  # function as a PROMIS T-score (higher is better), alone
                patient.score(PROMIS_FUNCTION[0], day - timedelta(days=2), disability)
                patient.score(PROMIS_FUNCTION[0], later, disability + (6 if relieved else 1))
            else:
                patient.score(DISABILITY[0], day - timedelta(days=2), disability)
                patient.score(PAIN[0], later, round(pain * (0.3 if relieved else 0.9)))
        patient.add("Procedure", code, day, status="not-done" if rng.random() < shape.not_completed else "completed")
        if rng.random() < shape.second_esi:
            day += timedelta(days=rng.choice([10, 30, 120, 200]))  # 10: too soon
            patient.add("Procedure", code, day)
    if rng.random() < shape.regenerative:  # after an ESI, or (the pathway's order broken) without one
        day += timedelta(days=rng.randrange(30, 120))
        coding = rng.choice(REGENERATIVE)  # intradiscal (no ESI first) or PRP into the lumbar spine
        site = {} if coding[1] == "0627T" else {"bodySite": [{"coding": [dict(zip(("system", "code", "display"),
                                                                                   SPINE_SITE[0], strict=True))]}]}
        patient.add("Procedure", coding, day, **site)
    if rng.random() < shape.surgery:
        day += timedelta(days=rng.randrange(30, 200))
        status = "in-progress" if rng.random() < shape.not_completed else "completed"
        patient.add("Procedure", rng.choice(SURGERY), day, status=status)
        status_day = day - timedelta(days=rng.randrange(10, 200))
        smokes = rng.random() < shape.smoker
        if rng.random() < shape.cotinine:  # a urine cotinine level instead of a smoking status
            level = rng.uniform(50, 500) if smokes else rng.uniform(0, 10)
            patient.add("Observation", COTININE[0], status_day, valueQuantity={
                "value": round(level, 1), "unit": "ng/mL", "system": "http://unitsofmeasure.org", "code": "ng/mL"})
        else:
            patient.add("Observation", SMOKING[0], status_day, valueCodeableConcept={"coding": [
                {"system": SNOMED, "code": "449868002" if smokes else "266919005",
                 "display": "Smokes tobacco daily (finding)" if smokes else "Never smoked tobacco (finding)"}]})
        if rng.random() < shape.hba1c:
            patient.score(HBA1C[0], day - timedelta(days=rng.randrange(10, 150)), round(rng.uniform(6.0, 10.0), 1))
    if rng.random() < shape.cancer_history:  # no spine imaging on record: image first
        patient.add("Condition", CANCER_HISTORY[0], onset - timedelta(days=rng.randrange(100, 2000)))
    if rng.random() < shape.anticoagulant:  # taken throughout the story
        patient.medication(rng.choice(ANTICOAGULANTS), onset - timedelta(days=30), 4000, by_reference=False)
    cancer = any(c["code"]["coding"][0]["code"] == CANCER_HISTORY[0][1] for c in patient.resources["Condition"])
    if not cancer and rng.random() < shape.imaged:  # an MRI once the problem began, and again before surgery
        patient.study(onset + timedelta(days=rng.randrange(7, 30)))
        surgeries = [p for p in patient.resources["Procedure"] if p["code"]["coding"][0] in map(_coding, SURGERY)]
        if surgeries:
            surgery_day = date.fromisoformat(surgeries[-1]["performedDateTime"][:10])
            patient.study(surgery_day - timedelta(days=rng.randrange(10, 60)))


def patient_resources(index: int, seed: int, today: date, shape: Shape = Shape()) -> dict[str, list[dict]]:
    rng = random.Random(seed * 1_000_003 + index)
    patient = _Patient(f"p{uuid.UUID(int=rng.getrandbits(128)).hex}", rng, today)
    patient.resources["Patient"].append({
        "resourceType": "Patient", "id": patient.id, "meta": {"lastUpdated": f"{today.isoformat()}T00:00:00Z"},
        "identifier": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.0", "value": str(rng.getrandbits(40))}],
        "name": [{"family": "Example", "given": ["Pat"]}], "gender": rng.choice(["female", "male"]),
        "birthDate": (today - timedelta(days=rng.randrange(25 * 365, 85 * 365))).isoformat()})
    for _ in range(shape.encounters_per_patient):
        day = today - timedelta(days=rng.randrange(1, 1000))
        patient.resources["Encounter"].append({
            "resourceType": "Encounter", "id": f"e{rng.getrandbits(64):x}", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient.id}"}, "period": {"start": day.isoformat()}})
    kinds = list(UNRELATED)
    for i in range(shape.unrelated_per_patient):
        kind = kinds[i % len(kinds)]
        patient.add(kind, rng.choice(UNRELATED[kind]), today - timedelta(days=rng.randrange(1, 1000)))
    if rng.random() < shape.back_pain:
        _spine_story(patient, shape)
    return patient.resources


def medications() -> list[dict]:
    """The Medication resources the by-reference drugs point to (shared by every patient)."""
    return [{"resourceType": "Medication", "id": f"med-{code}", "status": "active",
             "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display}}
            for system, code, display in NSAIDS]


def write_export(out: Path, patients: int, seed: int = 7, today: date | None = None, files_per_type: int = 1,
                 shape: Shape = Shape()) -> Path:
    """Write the export's files and manifest.json; the manifest's path."""
    today = today or date.today()
    out.mkdir(parents=True, exist_ok=True)
    names = {(kind, part): f"{kind}.{part:03d}.ndjson.gz" for kind in TYPES for part in range(files_per_type)}
    files = {key: gzip.open(out / name, "wb", compresslevel=1) for key, name in names.items()}
    try:
        for line in (json.dumps(m) for m in medications()):
            files["Medication", 0].write(line.encode() + b"\n")
        for index in range(patients):
            for kind, resources in patient_resources(index, seed, today, shape).items():
                for resource in resources:
                    files[kind, index % files_per_type].write(json.dumps(resource).encode() + b"\n")
    finally:
        for file in files.values():
            file.close()
    manifest = {"transactionTime": f"{today.isoformat()}T00:00:00Z", "request": "$export", "requiresAccessToken": False,
                "output": [{"type": kind, "url": name} for (kind, _), name in sorted(names.items())], "error": []}
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--files-per-type", type=int, default=1)
    args = parser.parse_args()
    manifest = write_export(args.out, args.patients, args.seed, files_per_type=args.files_per_type)
    print(f"wrote {args.patients:,} patients to {manifest.parent} (manifest {manifest.name})")


if __name__ == "__main__":
    main()
