"""Raw FHIR JSON -> PatientRecord: the one-pass filter, validation of relevant resources only, dates."""
from __future__ import annotations

from datetime import date

from support import CPT, ICD10, RXNORM, coded, condition, medication_statement, procedure

from cds_spine.fhir.bundles import kept_entries
from cds_spine.fhir.draft_orders import read_draft_orders
from cds_spine.fhir.record import build_record
from cds_spine.fhir.relevance import relevance_filter


def read(resources: list, knowledge):
    """As a service call reads a prefetch Bundle: the one-pass filter, then validation of what it kept."""
    kept, _ = kept_entries({"entry": [{"resource": r} for r in resources]}, relevance_filter(knowledge))
    return build_record(kept, knowledge)


def medication_request(**extra) -> dict:
    return {"resourceType": "MedicationRequest", "id": "mr", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "authoredOn": "2026-03-01",
            "medicationCodeableConcept": coded(RXNORM, "197806", "Ibuprofen 600 MG Oral Tablet"), **extra}


def test_only_relevant_resources_are_kept(knowledge):
    record = read([condition("I10"), condition("M54.16"), procedure("99213", "2026-01-01"),
                           procedure("97110", "2026-01-01"), {"resourceType": "Patient", "id": "p1"}], knowledge)
    assert [c.reference for c in record.conditions] == ["Condition/cond-M54.16"]
    assert [p.codes[0].code for p in record.procedures] == ["97110"]


def test_irrelevant_malformed_resources_are_never_validated(knowledge):
    junk = [{"resourceType": "Procedure", "status": 5, "code": {"coding": "x"}}, {"resourceType": 7}, [], "x", None,
            {"resourceType": "Condition", "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]},
             "onsetDateTime": "not a date"}]
    record = read(junk, knowledge)
    assert record.unreadable == () and record.conditions == () and record.procedures == ()


def test_relevant_resource_with_a_malformed_essential_element_is_named_as_unreadable(knowledge):
    bad = {**procedure("97110", "2026-01-01"), "status": {"code": "completed"}}
    record = read([bad], knowledge)
    assert record.unreadable == ("a procedure",) and record.procedures == ()  # issue 33: in words, no resource id


def test_relevant_resource_is_read_without_its_malformed_elements_and_named(knowledge):
    bad = {**condition("M54.16"), "onsetDateTime": "the first of May", "clinicalStatus": 7}
    record = read([bad], knowledge)
    [entry] = record.conditions
    assert entry.codes[0].code == "M54.16" and entry.onset is None and entry.clinical_status is None
    assert record.unreadable == () and record.partly_read == ("a diagnosis without clinicalStatus, onsetDateTime",)


def test_duplicates_across_keys_and_pages_are_read_once(knowledge):
    visit = procedure("97110", "2026-01-01", rid="same")
    assert len(read([visit, dict(visit)], knowledge).procedures) == 1


def test_of_two_versions_of_one_resource_the_newer_is_read_whatever_their_order(knowledge):
    old = procedure("97110", "2026-01-01", rid="same", meta={"lastUpdated": "2026-01-01T00:00:00Z"})
    new = procedure("97110", "2026-01-08", rid="same", meta={"lastUpdated": "2026-01-09T00:00:00Z"})
    for resources in ([old, new], [new, old]):
        [entry] = read(resources, knowledge).procedures
        assert entry.performed.start.isoformat() == "2026-01-08"
    undated = [procedure("97110", day, rid="same") for day in ("2026-01-01", "2026-01-08")]
    assert read(undated, knowledge).procedures == read(undated[::-1], knowledge).procedures


def test_text_only_medication_is_relevant(knowledge):
    statement = {"resourceType": "MedicationStatement", "id": "ms", "status": "active",
                 "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": "naproxen 500mg"},
                 "effectivePeriod": {"start": "2026-02"}}
    [entry] = read([statement], knowledge).medications
    assert (entry.text, entry.start, entry.stated_end) == ("naproxen 500mg", date(2026, 2, 1), None)


def test_medication_reference_display_is_read(knowledge):
    request = medication_request(medicationReference={"reference": "Medication/m1", "display": "Gabapentin 300mg"})
    del request["medicationCodeableConcept"]
    [entry] = read([request], knowledge).medications
    assert entry.text == "Gabapentin 300mg"


def test_medication_request_supply_and_repeats(knowledge):
    request = medication_request(dispenseRequest={"numberOfRepeatsAllowed": 2, "expectedSupplyDuration": {
        "value": 2, "unit": "weeks", "system": "http://unitsofmeasure.org", "code": "wk"}})
    [entry] = read([request], knowledge).medications
    assert (entry.start, entry.stated_end) == (date(2026, 3, 1), date(2026, 4, 11))  # 3 fills of 14 days


def test_partial_and_zoned_dates_become_utc_days(knowledge):
    late = procedure("97110", "2026-03-01T23:30:00-05:00", rid="late")
    year = {**procedure("97110", "2025", rid="year")}
    period = {**procedure("97110", "x", rid="period")}
    del period["performedDateTime"]
    period["performedPeriod"] = {"start": "2025-11", "end": "2025-12"}
    by_id = {p.reference: p.performed for p in read([late, year, period], knowledge).procedures}
    assert by_id["Procedure/late"].start == date(2026, 3, 2)
    assert (by_id["Procedure/year"].start, by_id["Procedure/year"].end) == (date(2025, 1, 1), date(2025, 12, 31))
    assert (by_id["Procedure/period"].start, by_id["Procedure/period"].end) == (date(2025, 11, 1), date(2025, 12, 31))


def test_condition_status_and_abatement(knowledge):
    resolved = condition("M54.16", status="resolved", abatementDateTime="2026-01-01")
    [entry] = read([resolved], knowledge).conditions
    assert (entry.clinical_status, entry.abated) == ("resolved", True)


def test_draft_orders_are_read_whatever_their_shape(knowledge):
    orders = read_draft_orders([
        {"resourceType": "ServiceRequest", "id": "a", "code": coded(CPT, "64483"), "status": "draft"},
        {"resourceType": "MedicationOrder", "id": "b", "medicationCodeableConcept": {"coding": [{}]}},
        {"resourceType": "ProcedureRequest", "code": [coded(CPT, "62323")]},
    ])
    assert [(o.reference, [c.code for c in o.codes]) for o in orders] == [
        ("ServiceRequest/a", ["64483"]), ("MedicationOrder/b", []), (None, ["62323"])]


def test_older_fhir_generations_are_read_in_their_r4_shape(knowledge):
    """STU3 and DSTU2 shapes of what the rules read: the same record as their R4 equivalents."""
    stu3_condition = {**condition("M54.16", status=None, rid="stu3"), "clinicalStatus": "resolved",
                      "verificationStatus": "confirmed", "assertedDate": "2026-01-05"}
    dstu2_condition = {k: v for k, v in condition("M54.16", status=None, rid="dstu2").items() if k != "subject"}
    dstu2_condition.update(patient={"reference": "Patient/p1"}, dateRecorded="2026-02-01", abatementBoolean=True)
    not_done = {**procedure("97110", "2026-03-01", rid="stu3-not-done"), "notDone": True}
    not_taken = {**medication_statement("197806", "2026-03-01", None, status="completed", rid="stu3-n"), "taken": "n"}
    referral = {"resourceType": "ProcedureRequest", "id": "pr", "status": "suspended", "intent": "order",
                "subject": {"reference": "Patient/p1"}, "code": coded(CPT, "97110"), "authoredOn": "2026-03-02",
                "reasonCodeableConcept": coded(ICD10, "M54.16")}
    record = read([stu3_condition, dstu2_condition, not_done, not_taken, referral], knowledge)
    assert record.unreadable == () and record.partly_read == ()
    conditions = {c.reference: c for c in record.conditions}
    assert (conditions["Condition/stu3"].clinical_status, conditions["Condition/stu3"].verification_status,
            conditions["Condition/stu3"].onset) == ("resolved", "confirmed", date(2026, 1, 5))
    assert (conditions["Condition/dstu2"].onset, conditions["Condition/dstu2"].abated) == (date(2026, 2, 1), True)
    assert [(p.reference, p.status) for p in record.procedures] == [("Procedure/stu3-not-done", "not-done")]
    assert [(m.reference, m.status) for m in record.medications] == [("MedicationStatement/stu3-n", "not-taken")]
    [request] = record.service_requests
    assert (request.reference, request.status, request.authored_on) == ("ProcedureRequest/pr", "on-hold",
                                                                         date(2026, 3, 2))
    assert [code.code for reason in request.reasons for code in reason.codes] == ["M54.16"]


def test_a_diagnosis_listed_by_its_encounter_takes_the_encounters_date(knowledge):
    undated = condition("M54.16", status=None, rid="listed")
    encounter = {"resourceType": "Encounter", "id": "visit", "status": "finished", "period": {"start": "2026-04-02"},
                 "diagnosis": [{"condition": {"reference": "Condition/listed"}}]}
    [entry] = read([undated, encounter], knowledge).conditions
    assert entry.onset == date(2026, 4, 2)
    [entry] = read([undated], knowledge).conditions
    assert entry.onset is None
