"""The decision a spine clinician reads from real-shaped records (../shared/real-data/, Synthea patients
written by others), one test per class of failure seen on them (issue 9). Where the export lacks a shape
(a referral recorded as a Procedure, a cord-lesion diagnosis), a real resource of the same patient is
copied with another code, so the shape stays the EHR's."""
from __future__ import annotations

import json

import pytest
from real_records import CPT, cds4cpm_patient, evaluate, like, order, patient, request

ESI_LUMBAR, ESI_CERVICAL, DISCECTOMY = order("64483"), order("62321"), order("63030")


def summaries(cards: list[dict]) -> list[str]:
    return [card["summary"] for card in cards]


def warnings(cards: list[dict]) -> list[dict]:
    return [card for card in cards if card["indicator"] == "warning"]


def said(card: dict) -> list[str]:
    """What the card says, finding by finding: its summary, then the lines under **Also:** (a real patient on an
    antiplatelet gets that warning first, and the conservative-therapy finding after it)."""
    also = card["detail"].split("**Also:**\n")[1].split("\n\n")[0].splitlines() if "**Also:**" in card["detail"] else []
    return [card["summary"], *(line.removeprefix("- ") for line in also)]


def says(card: dict, start: str) -> bool:
    return any(line.startswith(start) for line in said(card))


# --- 1. medication courses ------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix,as_of,drug", [
    ("85629dc4", "2025-06-01", "Tylenol"),  # acetaminophen renewed at every yearly visit since 2022, newest active
    ("b9a63e7c", "2025-06-01", "Ibu"),  # ibuprofen likewise
])
def test_yearly_renewals_are_one_course_until_today(tmp_path, prefix, as_of, drug):
    pid, resources = patient(prefix)
    cards = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), as_of)
    assert warnings(cards) == []  # a year of scheduled analgesic is conservative therapy
    [card] = cards
    assert drug in card["detail"] and "(4 orders)" in card["detail"]
    assert "Longest continuous episode: 366 days" in card["detail"]


def test_an_active_order_written_before_the_lookback_still_runs(tmp_path):
    # Naproxen for hip osteoarthritis, active since 2019, no dispense details: a long-term systemic NSAID.
    pid, resources = patient("38d2711e")
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2024-05-01")
    assert card["summary"].startswith("Clopidogrel on record: hold it 7 days")  # the patient's antiplatelet
    assert not any("conservative therapy documented" in line for line in said(card))
    assert "Naproxen sodium 220 MG Oral Tablet, taken for Osteoarthritis of hip" in card["detail"]


@pytest.mark.parametrize("as_of,counts", [("2023-05-10", False), ("2023-07-01", True)])
def test_a_drug_for_another_chronic_condition_counts_once_taken_long_enough(tmp_path, as_of, counts):
    # Naproxen for knee osteoarthritis, written 2023-04-20 and active: 21 days by May 10, 73 by July 1.
    pid, resources = patient("e2eba15d")
    cards = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), as_of)
    detail = cards[0]["detail"]
    assert ("taken for Osteoarthritis of knee" in detail) is counts
    assert ("Naproxen sodium 220 MG Oral Tablet, 2023-04-20 (for Osteoarthritis of knee" in detail) is not counts


def _named_by_reference(resources: dict, reference: str) -> dict:
    """The patient's ibuprofen orders rewritten to name their drug by reference; returns the Medication."""
    medication = None
    for order_ in resources["MedicationRequest"]:
        concept = order_.get("medicationCodeableConcept", {})
        if "Ibu" in concept.get("text", ""):
            medication = {"resourceType": "Medication", "id": reference.rsplit("/", 1)[-1].lstrip("#"),
                          "code": order_.pop("medicationCodeableConcept"), "status": "active"}
            order_["medicationReference"] = {"reference": reference}
    return medication


def test_a_medication_named_by_a_contained_reference_is_read(tmp_path):
    pid, resources = patient("b9a63e7c")  # ibuprofen renewed yearly
    medication = _named_by_reference(resources, "#ibu")
    for order_ in resources["MedicationRequest"]:
        if "medicationReference" in order_:
            order_["contained"] = [medication]
    cards = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-01")
    assert warnings(cards) == [] and "Ibuprofen 400 MG Oral Tablet \\[Ibu\\] (4 orders)" in cards[0]["detail"]


def test_a_medication_missing_from_prefetch_is_fetched(tmp_path, httpx_mock):
    pid, resources = patient("b9a63e7c")
    medication = _named_by_reference(resources, "Medication/ibu")
    httpx_mock.add_response(url="https://ehr.example.org/fhir/Medication?_id=ibu", json={
        "resourceType": "Bundle", "type": "searchset", "entry": [{"resource": medication}]})
    body = request(pid, resources, ESI_LUMBAR)
    body.update(fhirServer="https://ehr.example.org/fhir", fhirAuthorization={
        "access_token": "T", "token_type": "Bearer", "expires_in": 300, "scope": "user/*.read", "subject": "svc"})
    cards = evaluate(tmp_path, body, "2025-06-01")
    assert warnings(cards) == [] and "(4 orders)" in cards[0]["detail"]
    assert httpx_mock.get_request().headers["Authorization"] == "Bearer T"


# --- 2. reasons -------------------------------------------------------------------------------------------

def test_acetaminophen_for_bronchitis_does_not_count(tmp_path):
    pid, resources = patient("646f0323")
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2023-05-20")
    assert says(card, "No conservative therapy documented")
    assert "Acetaminophen 325 MG Oral Tablet, 2023-05-07 (for Acute bronchitis (disorder))" in card["detail"]


def test_therapy_in_a_skilled_nursing_stay_after_a_wrist_fracture_does_not_count(tmp_path):
    pid, resources = patient("15431666")
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-05-10")
    assert card["summary"].startswith("No radicular or stenosis diagnosis on record for lumbar ESI")
    assert "No conservative therapy documented" in card["detail"] and card["indicator"] == "warning"
    assert "Occupational therapy: 2 records" in card["detail"] and "(for Osteoporotic fracture of bone" in card[
        "detail"]


def test_drug_rehabilitation_is_not_listed_on_a_spine_card(tmp_path):
    pid, resources = patient("38d2711e")  # rehabilitation visits with reason "Dependent drug abuse"
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2024-05-01")
    assert "Rehabilitation" not in card["detail"]


# --- 3. regions -------------------------------------------------------------------------------------------

def test_therapy_after_whiplash_is_for_the_neck_not_the_low_back(tmp_path):
    pid, resources = patient("6ff5fec4")  # whiplash 2024-01-24, naproxen that day, PT the next
    [lumbar] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2024-02-10")
    assert lumbar["summary"].startswith("No radicular or stenosis diagnosis on record for lumbar ESI")  # a neck sprain
    assert "No conservative therapy documented" in lumbar["detail"]
    assert "Physical therapy, 2024-01-25 (for the cervical spine)" in lumbar["detail"]
    [cervical] = evaluate(tmp_path, request(pid, resources, ESI_CERVICAL), "2024-02-10")
    assert cervical["summary"].startswith("No radicular or stenosis diagnosis on record for cervical/thoracic ESI")
    assert "Only 2 days of conservative therapy" in cervical["detail"]
    # Issue 33: seventeen days after the whiplash, before the four weeks of symptoms LCD L39240 asks for
    assert "Whiplash injury to neck (disorder) first recorded 17 days ago: an ESI needs 28 days" in cervical["detail"]
    assert "Physical therapy: 1 visit, 2024-01-25" in cervical["detail"]


# --- 4. referrals recorded as procedures ------------------------------------------------------------------

def test_a_referral_recorded_as_a_procedure_is_a_referral_not_therapy(tmp_path):
    pid, resources = patient("561f242f")  # chronic low back pain, opioids only
    template = next(p for p in resources["Procedure"] if "performedPeriod" in p)
    resources["Procedure"].append(like(template, "444831000124102", "Referral for physical therapy (procedure)",
                                       performedPeriod={"start": "2025-06-01T10:00:00+00:00",
                                                        "end": "2025-06-01T10:15:00+00:00"}))
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-15")
    assert says(card, "No conservative therapy documented")  # not counted as therapy
    assert "suggestions" not in card  # no second referral offered
    assert "A referral is already on record (Referral for physical therapy (procedure)" in card["detail"]


# --- 5. codes real data uses --------------------------------------------------------------------------------

def test_a_spinal_cord_lesion_is_a_red_flag(tmp_path):
    pid, resources = patient("561f242f")
    template = resources["Condition"][0]
    resources["Condition"].append(like(template, "698754002", "Chronic paralysis due to lesion of spinal cord",
                                       onsetDateTime="2025-06-10T08:00:00+00:00", clinicalStatus={"coding": [{
                                           "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]}))
    resources["Condition"][-1].pop("abatementDateTime", None)
    cards = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-15")
    assert warnings(cards) == []
    assert cards[0]["summary"].startswith("Red flag on record (Chronic paralysis due to lesion of spin")


@pytest.mark.parametrize("as_of,cards", [("2024-02-10", 1), ("2024-04-01", 0)])
def test_a_neck_injury_is_a_spine_diagnosis_while_it_lasts(tmp_path, as_of, cards):
    pid, resources = patient("6ff5fec4")  # whiplash 2024-01-24, resolved 2024-03-17
    found = evaluate(tmp_path, request(pid, resources, hook="patient-view"), as_of)
    assert len(found) == cards


def test_occupational_therapy_is_recognised(tmp_path):
    pid, resources = patient("8397ac4c")  # OT on the day of a whiplash injury
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2023-01-10")
    assert "Occupational therapy, 2022-12-15 (for the cervical spine)" in card["detail"]


def test_manual_therapy_is_physical_therapy(tmp_path):
    pid, resources = patient("561f242f")
    template = next(p for p in resources["Procedure"] if "performedPeriod" in p)
    resources["Procedure"] += [like(template, "97140", "Manual therapy", CPT, performedPeriod={
        "start": f"2025-{month:02d}-10T10:00:00+00:00", "end": f"2025-{month:02d}-10T10:30:00+00:00"})
        for month in (3, 4, 5)]
    cards = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-15")
    assert "Physical therapy: 3 visits, 2025-03-10 to 2025-05-10" in cards[0]["detail"]
    assert "Chiropractic" not in cards[0]["detail"]


# --- 6. the text fallback -------------------------------------------------------------------------------------

def test_a_cough_product_with_acetaminophen_is_not_acetaminophen(tmp_path):
    pid, resources = patient("561f242f")  # acetaminophen / dextromethorphan / doxylamine for bronchitis
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-05-20")
    assert says(card, "No conservative therapy documented")
    assert "Dextromethorphan" not in card["detail"]


# --- 7 and 9. order-independent rules ----------------------------------------------------------------------------

def test_patient_view_applies_the_diagnosis_rule_like_the_order_card(tmp_path):
    pid, resources = patient("85629dc4")  # chronic neck and low back pain: axial only
    [summary] = evaluate(tmp_path, request(pid, resources, hook="patient-view"), "2025-06-01")
    [esi] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-01")
    assert "ESI not indicated (axial pain only)" in summary["summary"] and "criteria met" not in summary["summary"]
    assert esi["summary"].startswith("No radicular or stenosis diagnosis on record")
    assert summary["source"]["url"].startswith("https://")


def test_a_discectomy_for_axial_pain_alone_gets_an_indication_card(tmp_path):
    pid, resources = patient("85629dc4")
    [card] = evaluate(tmp_path, request(pid, resources, DISCECTOMY), "2025-06-01")
    assert card["indicator"] == "info"
    assert card["summary"] == ("No radicular or stenosis diagnosis on record; surgery is not recommended for axial "
                               "pain alone")


# --- 10. card text ------------------------------------------------------------------------------------------------

def test_opioid_renewals_are_one_line_per_drug(tmp_path):
    pid, resources = patient("561f242f")  # four opioids renewed at every visit
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-15")
    lines = [line for line in card["detail"].splitlines() if line.endswith("(opioid)")]
    assert len(lines) == 4 and all(": 6 records, 2024-06-15 to 2025-06-15" in line for line in lines)


def test_card_text_reads_well(tmp_path):
    pid, resources = patient("561f242f")
    template = next(r for r in resources["MedicationRequest"] if "medicationCodeableConcept" in r)
    resources["MedicationRequest"].append(like(template, "x", "x", authoredOn="2025-06-10T10:00:00+00:00",
                                               status="completed"))
    resources["MedicationRequest"][-1].pop("code")
    resources["MedicationRequest"][-1]["medicationCodeableConcept"] = {"coding": [{
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "310965",
        "display": "Ibuprofen 200 MG Oral Tablet"}], "text": "Ibuprofen 200 MG Oral Tablet"}
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-15")
    assert says(card, "Only 1 day of conservative therapy documented")
    assert "->" not in card["detail"] and "→" in card["detail"]
    missing_at = card["detail"].index("**Missing:**")
    on_record_at = card["detail"].index("**On record:**")
    assert missing_at < on_record_at < card["detail"].index("Diagnosis: Chronic low back pain")


@pytest.mark.parametrize("reason,draft,counts", [
    ("82423001", ESI_LUMBAR, True),  # "Chronic pain" names no site: as if no reason
    ("278860009", ESI_LUMBAR, True),  # "Chronic low back pain": for the lumbar spine
    ("278860009", ESI_CERVICAL, False),  # ... not for the neck
])
def test_movement_therapy_for_a_pain_condition_counts_in_its_region(tmp_path, reason, draft, counts):
    pid, resources = patient("561f242f")
    [condition] = [c for c in resources["Condition"] if c["code"]["coding"][0]["code"] == reason]
    template = next(p for p in resources["Procedure"] if "performedPeriod" in p)
    resources["Procedure"] += [like(template, "229064008", "Movement therapy (regime/therapy)", performedPeriod={
        "start": f"2025-{month:02d}-{day:02d}T10:00:00+00:00", "end": f"2025-{month:02d}-{day:02d}T10:45:00+00:00"},
        reasonReference=[{"reference": f"urn:uuid:{condition['id']}", "display": condition["code"]["text"]}])
        for month in (4, 5) for day in (1, 8, 15, 22)]
    cards = evaluate(tmp_path, request(pid, resources, draft), "2025-06-01")
    conservative = [card for card in cards if any("conservative therapy documented" in line for line in said(card))]
    assert (conservative == []) is counts


# --- 7. scores and results (Synthea's pain, smoking-status and HbA1c Observations) -------------------------

def test_a_synthea_pain_score_is_the_baseline_and_the_function_score_is_named_missing(tmp_path):
    pid, resources = patient("b9a63e7c")  # pain 3/10 on 2025-04-17, no disability index ever
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-01")
    assert "Recorded: pain 3/10 on 2025-04-17" in card["detail"]
    assert "No baseline function score in the last 90 days" in card["detail"]


def test_the_response_to_an_esi_is_read_from_synthea_pain_scores(tmp_path):
    pid, resources = patient("ba45a621")  # pain 1/10 on 2024-03-17, 2/10 on 2024-05-12
    injected = {"resourceType": "Procedure", "id": "esi-real", "status": "completed", "subject": {"reference": f"Patient/{pid}"},
                "code": {"coding": [{"system": CPT, "code": "64483"}]}, "performedDateTime": "2024-03-20T10:00:00Z"}
    resources = {**resources, "Procedure": resources.get("Procedure", []) + [injected]}
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2024-06-01")
    assert says(card, "No conservative therapy documented")  # before the response
    assert "- Last lumbar ESI: pain 1/10 on 2024-03-17, 2/10 on 2024-05-12: -100 % relief; 50 % required" in card["detail"]


def test_a_synthea_smoker_is_told_before_elective_fusion(tmp_path):
    pid, resources = patient("f8446dc0")  # "Smokes tobacco daily" on 2022-08-16
    [card] = evaluate(tmp_path, request(pid, resources, order("22612")), "2022-10-01")
    assert "Nicotine use on record (2022-08-16): payers ask for nicotine-free status before elective fusion" \
        in card["detail"]
    [later] = evaluate(tmp_path, request(pid, resources, order("22612")), "2023-09-01")  # never smoked since
    assert "smoker" not in later["detail"]


def test_a_cotinine_level_after_a_synthea_smoker_status_decides(tmp_path):
    """A quantitative urine cotinine, as Mayo Clinic Laboratories report it (10366-3, ng/mL), after Synthea's
    "Smokes tobacco daily": 3 ng/mL is nicotine-free, 180 ng/mL is nicotine use."""
    pid, resources = patient("f8446dc0")  # "Smokes tobacco daily" on 2022-08-16

    def cotinine(value: float) -> dict:
        return {"resourceType": "Observation", "id": f"cotinine-{value}", "status": "final",
                "subject": {"reference": f"Patient/{pid}"},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                          "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "10366-3", "display": "Cotinine"}]},
                "effectiveDateTime": "2022-09-20T08:10:00-05:00",
                "valueQuantity": {"value": value, "unit": "ng/mL", "system": "http://unitsofmeasure.org", "code": "ng/mL"}}

    for value, uses in ((3, False), (180, True)):
        with_level = {**resources, "Observation": resources.get("Observation", []) + [cotinine(value)]}
        [card] = evaluate(tmp_path, request(pid, with_level, order("22612")), "2022-10-01")
        assert ("Nicotine use on record (2022-09-20)" in card["detail"]) is uses
        assert "Nicotine use on record (2022-08-16)" not in card["detail"]


def test_prp_for_a_synthea_back_pain_patient_comes_after_an_esi(tmp_path):
    pid, resources = patient("b9a63e7c")  # chronic low back pain, a year of ibuprofen, no ESI
    prp = {**order("0232T"), "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "122496007"}]}]}
    [card] = evaluate(tmp_path, request(pid, resources, prp), "2025-06-01")
    assert card["summary"] == ("No ESI on record before this lumbar regenerative injection: the pathway places "
                               "regenerative injections after ESI")
    knee = {**prp, "bodySite": [{"coding": [{"system": "http://snomed.info/sct", "code": "72696002"}]}]}
    assert evaluate(tmp_path, request(pid, resources, knee), "2025-06-01") == []


def test_a_synthea_hba1c_is_read_and_under_the_threshold_says_nothing(tmp_path):
    pid, resources = patient("b9a63e7c")  # HbA1c 6.29 % on 2025-04-17
    [card] = evaluate(tmp_path, request(pid, resources, order("22612")), "2025-06-01")
    assert "Recorded: HbA1c 6.3 % on 2025-04-17" in card["detail"] and "HbA1c 6.3 % on 2025-04-17:" not in card["detail"]


def test_an_ahrq_peg_pain_item_dated_by_issued_is_the_baseline(tmp_path):
    """The AHRQ chronic-pain bundles date their scores by `issued` only and code the PEG pain item as a
    component under AHRQ CDS Connect's own code system."""
    pid, resources = cds4cpm_patient("brenda_jackson")  # PEG on 2018-10-09: pain 7; FACES 6 the same day
    [card] = evaluate(tmp_path, request(pid, resources, order("62322")), "2018-11-01")  # unguided: an info card
    assert card["summary"].startswith("ESI ordered without fluoroscopic or CT guidance")
    assert "Recorded: pain 7/10 on 2018-10-09" in card["detail"]
    assert "No baseline function score in the last 90 days" in card["detail"]


def test_promis_t_scores_shaped_as_the_mii_guide_shows_them_answer_for_a_synthea_esi(tmp_path):
    """A PROMIS-29 physical function T-score as the MII PRO guide's examples write it ({score}, a method
    text, derived from a QuestionnaireResponse), on a Synthea patient whose pain scores are left out (issue 33:
    the LCD's 0-10 scale is judged first, T-scores only where no numeric rating exists): 7 points better is a
    response."""
    pid, resources = patient("ba45a621")  # pain 1/10 on 2024-03-17, 2/10 on 2024-05-12
    injected = {"resourceType": "Procedure", "id": "esi-real", "status": "completed", "subject": {"reference": f"Patient/{pid}"},
                "code": {"coding": [{"system": CPT, "code": "64483"}]}, "performedDateTime": "2024-03-20T10:00:00Z"}

    def t_score(rid: str, when: str, value: float) -> dict:
        return {"resourceType": "Observation", "id": rid, "status": "final", "subject": {"reference": f"Patient/{pid}"},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                          "code": "survey"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "91721-1",
                                     "display": "PROMIS physical function - version 2.0 T-score"}]},
                "effectiveDateTime": f"{when}T11:30:00+01:00", "method": {"text": "PROMIS-29 Profile v2.1"},
                "valueQuantity": {"value": value, "unit": "{score}", "system": "http://unitsofmeasure.org", "code": "{score}"},
                "derivedFrom": [{"reference": f"QuestionnaireResponse/{rid}"}]}

    no_pain = [o for o in resources.get("Observation", []) if "72514-3" not in json.dumps(o.get("code"))]
    resources = {**resources, "Procedure": resources.get("Procedure", []) + [injected],
                 "Observation": no_pain + [t_score("pf-1", "2024-03-15", 38.2), t_score("pf-2", "2024-05-10", 45.4)]}
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2024-06-01")
    assert "- Response to the last lumbar ESI (2024-03-20): PROMIS physical function 38.2 on 2024-03-15, 45.4 on " \
           "2024-05-10" in card["detail"]
    assert "% relief" not in card["detail"]


def test_ahrq_promis_item_answers_are_not_read_as_t_scores(tmp_path):
    """SallyEcho's bundle answers PROMIS items (61758-9 pain interference "Quite a bit", 75262-6 pain
    intensity "Very Severe", ...): items with answer codes, not the T-scores 77865-4 and 91721-1. Given to a
    Synthea back-pain patient the day before an ESI, none is read as a score."""
    _, sally = cds4cpm_patient("SallyEchoBundle")
    items = [observation for observation in sally["Observation"]
             if observation["code"]["coding"][0]["system"].startswith(("http://loinc.org", "https://loinc.org"))]
    assert {"61758-9", "75262-6"} <= {item["code"]["coding"][0]["code"] for item in items}
    pid, resources = patient("b9a63e7c")  # pain 3/10 on 2025-04-17, no function score
    moved = [{**item, "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2025-05-31T10:00:00Z"}
             for item in items]
    resources = {**resources, "Observation": resources.get("Observation", []) + moved}
    [card] = evaluate(tmp_path, request(pid, resources, ESI_LUMBAR), "2025-06-01")
    assert "PROMIS" not in card["detail"] and "Recorded: pain 3/10 on 2025-04-17" in card["detail"]
    assert "No baseline function score in the last 90 days" in card["detail"]
