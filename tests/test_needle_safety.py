"""Safe at the needle, over HTTP: a red flag or a recent systemic infection stops an injection (a critical card
that leads, urgent imaging and a surgical consult, never physical therapy first); at a surgery order a red flag
waives the waiting; patient-view says the same; real-shaped records get the same answers."""
from __future__ import annotations

import re

import pytest
from real_records import evaluate, mimic_patient, order, patient, request, smart_patient
from support import (
    ICD10,
    ORDER_SIGN,
    PATIENT_VIEW,
    RXNORM,
    SNOMED,
    baseline_scores,
    call,
    condition,
    day,
    esi_order,
    hook_request,
    imaging_report,
    procedure,
    pt_visits,
    radiculopathy,
)


def red_flag(code: str, system: str = ICD10, onset: int = 5) -> dict:
    return condition(code, system, rid=f"flag-{code}", onsetDateTime=day(-onset))


def only_card(response) -> dict:
    [card] = response.json()["cards"]
    return card


def suggestion_codes(card: dict) -> list[str]:
    return [action["resource"]["code"]["coding"][0]["code"] for suggestion in card.get("suggestions") or ()
            for action in suggestion["actions"] if action["type"] == "create"]


@pytest.mark.parametrize("code,system,draft,mri,named", [
    ("G06.1", ICD10, "64483", "72148", "G06.1"),                 # intraspinal abscess
    ("M46.46", ICD10, "62323", "72148", "M46.46"),               # discitis, lumbar
    ("C79.51", ICD10, "64483", "72148", "C79.51"),               # bone metastases
    ("192970008", SNOMED, "64483", "72148", "192970008"),        # cauda equina syndrome
    ("M21.371", ICD10, "64483", "72148", "M21.371"),             # foot drop
    ("M47.12", ICD10, "62321", "72141", "M47.12"),               # cervical myelopathy, cervical interlaminar ESI
])
def test_a_red_flag_stops_an_esi_with_urgent_imaging_and_a_consult(client, code, system, draft, mri, named):
    body = hook_request("order-sign", orders=[esi_order(code=draft)], conditions=[radiculopathy(), red_flag(code, system)])
    card = only_card(call(client, ORDER_SIGN, body))
    assert card["indicator"] == "critical"
    assert card["summary"].startswith(f"Red flag on record ({named})") and "before urgent evaluation" in card["summary"]
    assert suggestion_codes(card) == [mri, "103696004"]
    labels = [s["label"] for s in card["suggestions"]]
    assert not any("physical therapy" in label.lower() for label in labels)
    assert card["suggestions"][0]["actions"][0] == {"type": "delete", "resourceId": f"ServiceRequest/{esi_order()['id']}",
                                                    "description": card["suggestions"][0]["actions"][0]["description"]}
    assert [r["code"] for r in card["overrideReasons"]] == ["red-flag-evaluated", "surgeon-requested"]
    assert "try physical therapy" not in card["detail"]


def test_a_red_flag_leads_a_minor_finding_at_the_same_order(client):
    """Cauda equina for two days and an ESI nine days ago: the red flag leads, the interval is listed after it."""
    body = hook_request("order-sign", conditions=[radiculopathy(), red_flag("G83.4", onset=2)],
                        procedures=[{"resourceType": "Procedure", "id": "esi-9", "status": "completed",
                                     "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64483"}]},
                                     "subject": {"reference": "Patient/p1"}, "performedDateTime": day(-9)}])
    card = only_card(call(client, ORDER_SIGN, body))
    assert card["summary"] == "Red flag on record (G83.4): no lumbar ESI before urgent evaluation"
    assert "wait at least 14 days between injections" in card["detail"].split("**Also:**")[1]


def test_a_red_flag_waives_the_waiting_before_surgery_without_a_therapy_referral(client):
    body = hook_request("order-sign", orders=[esi_order(code="63047")], conditions=[radiculopathy(), red_flag("G83.4")])
    card = only_card(call(client, ORDER_SIGN, body))
    assert card["indicator"] == "info" and "requirement waived" in card["summary"]
    assert not card.get("suggestions")
    assert "red-flag-evaluated" not in [r["code"] for r in card["overrideReasons"]]


def test_sepsis_three_days_ago_stops_an_esi_after_enough_therapy(client):
    sepsis = condition("A41.9", status="resolved", rid="sepsis", onsetDateTime=day(-3), abatementDateTime=day(-1))
    body = hook_request("order-sign", conditions=[radiculopathy(), sepsis], procedures=pt_visits(90, 48))
    card = only_card(call(client, ORDER_SIGN, body))
    assert card["indicator"] == "critical"
    assert card["summary"] == f"A41.9 on {day(-3)}: no lumbar ESI until the infection has resolved"


def test_patient_view_says_no_injection_before_evaluation(client):
    body = hook_request("patient-view", conditions=[radiculopathy(), red_flag("G06.1")], procedures=pt_visits(90, 48))
    card = only_card(call(client, PATIENT_VIEW, body))
    assert "no spinal injection before evaluation" in card["summary"]
    assert "- ESI: not before red-flag evaluation" in card["detail"]
    assert "- Regenerative injection: not before red-flag evaluation" in card["detail"]
    assert "- Surgery: no therapy needed first (red flag)" in card["detail"]


def test_an_old_paraplegia_is_history_not_a_red_flag(client):
    body = hook_request("order-sign", conditions=[radiculopathy(), red_flag("G82.20", onset=3000)],
                        procedures=pt_visits(90, 48), observations=baseline_scores())
    assert call(client, ORDER_SIGN, body).json()["cards"] == []


def test_a_hospital_fracture_stops_an_esi_in_a_real_record(tmp_path):
    pid, resources = mimic_patient("a977f4b6")  # ICD-9 805.4, a lumbar vertebral fracture at an admission
    [card] = evaluate(tmp_path, request(pid, resources, draft=order("64483")), "2141-08-20")
    assert card["indicator"] == "critical"
    assert card["summary"].startswith("Red flag on record (Closed fracture of lumbar vertebra")
    assert "103696004" in suggestion_codes(card)


# --- anticoagulants and antiplatelets (ASRA/ESRA 2018) ------------------------------------------------------

def medication_request(display: str, code: str, authored: int, status: str = "active", rid: str = "mr-1") -> dict:
    return {"resourceType": "MedicationRequest", "id": rid, "status": status, "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}]},
            "subject": {"reference": "Patient/p1"}, "authoredOn": day(-authored)}


@pytest.mark.parametrize("draft,drug,code,expected", [
    ("62321", "apixaban 5 MG Oral Tablet", "1364445",
     "Apixaban on record: hold it 3 days before cervical/thoracic ESI (high bleeding risk)"),
    ("64483", "clopidogrel 75 MG Oral Tablet", "309362",
     "Clopidogrel on record: hold it 7 days before lumbar ESI (intermediate bleeding risk)"),
    ("62323", "warfarin sodium 5 MG Oral Tablet", "855332",
     "Warfarin on record: hold it 5 days (normal INR) before lumbar ESI (intermediate bleeding risk)"),
])
def test_an_anticoagulant_before_an_esi_names_the_drug_and_its_hold_interval(client, draft, drug, code, expected):
    body = hook_request("order-sign", orders=[esi_order(code=draft)], procedures=pt_visits(90, 48),
                        medication_requests=[medication_request(drug, code, authored=200)])
    card = only_card(call(client, ORDER_SIGN, body))
    assert (card["indicator"], card["summary"]) == ("warning", expected)
    assert "**Anticoagulation:** Stop it only with its prescriber's agreement" in card["detail"]
    assert "journals.lww.com/rapm" in card["detail"]


def test_an_anticoagulant_leads_before_therapy_and_follows_a_red_flag(client):
    apixaban = medication_request("apixaban 5 MG Oral Tablet", "1364445", authored=30)
    nothing_tried = only_card(call(client, ORDER_SIGN, hook_request("order-sign", medication_requests=[apixaban])))
    assert nothing_tried["summary"].startswith("Apixaban on record")
    assert "No conservative therapy documented" in nothing_tried["detail"].split("**Also:**")[1]
    red = hook_request("order-sign", conditions=[radiculopathy(), red_flag("G06.1")], medication_requests=[apixaban])
    card = only_card(call(client, ORDER_SIGN, red))
    assert card["summary"].startswith("Red flag on record") and "Apixaban on record" in card["detail"]


def test_a_drug_stopped_before_its_washout_or_a_surgery_order_gets_no_anticoagulant_line(client):
    stopped = {**medication_request("warfarin sodium 5 MG Oral Tablet", "855332", authored=60, status="completed"),
               "dispenseRequest": {"validityPeriod": {"start": day(-60), "end": day(-10)}}}
    body = hook_request("order-sign", procedures=pt_visits(90, 48), medication_requests=[stopped],
                        observations=baseline_scores())
    assert call(client, ORDER_SIGN, body).json()["cards"] == []
    apixaban = medication_request("apixaban 5 MG Oral Tablet", "1364445", authored=30)
    surgery = hook_request("order-sign", orders=[esi_order(code="63047")], procedures=pt_visits(90, 48),
                           medication_requests=[apixaban])
    assert call(client, ORDER_SIGN, surgery).json()["cards"] == []


def test_long_term_anticoagulation_without_a_drug_asks_for_it(client):
    z7901 = condition("Z79.01", rid="z7901", onsetDateTime=day(-400))
    body = hook_request("order-sign", conditions=[radiculopathy(), z7901], procedures=pt_visits(90, 48))
    card = only_card(call(client, ORDER_SIGN, body))
    assert card["summary"] == "Z79.01 on record: name the drug and hold it before lumbar ESI"


def test_a_synthea_patient_on_prasugrel_is_told_to_hold_it(tmp_path):
    pid, resources = patient("bfa7eda5")  # prasugrel 10 MG active since 2018, and clopidogrel
    [card] = evaluate(tmp_path, request(pid, resources, draft=order("64483")), "2026-06-01")
    assert card["summary"] == "Clopidogrel on record: hold it 7 days before lumbar ESI (intermediate bleeding risk)"
    assert "- Prasugrel on record: hold it 7-10 days before lumbar ESI (intermediate bleeding risk)" in card["detail"]


def test_a_mimic_patient_coded_z7901_is_asked_for_the_drug(tmp_path):
    pid, resources = mimic_patient("b6769365")
    [card] = evaluate(tmp_path, request(pid, resources, draft=order("62321")), "2200-01-01")
    assert card["summary"].startswith("Long term (current) use of anticoagula")
    assert card["summary"].endswith("on record: name the drug and hold it before cervical/thoracic ESI")


# --- cervical transforaminal: non-particulate steroid ----------------------------------------------------------

@pytest.mark.parametrize("draft,line", [("64479", True), ("0228T", True), ("64483", False), ("62321", False)])
def test_a_cervical_transforaminal_esi_asks_for_a_non_particulate_steroid(client, draft, line):
    neck = condition("M54.12", rid="neck", onsetDateTime=day(-120))
    body = hook_request("order-sign", orders=[esi_order(code=draft)], conditions=[neck, radiculopathy()],
                        procedures=pt_visits(90, 48))
    cards = call(client, ORDER_SIGN, body).json()["cards"]
    said = " ".join(card["summary"] + card["detail"] for card in cards)
    assert ("non-particulate steroid (dexamethasone) only" in said) is line
    assert ("doi.org/10.1097/ALN.0000000000000614" in said) is line


# --- image first: cancer history, weight loss, fever, immunosuppression, drug use ------------------------------

def mri(code: str, days_ago: int) -> dict:
    return procedure(code, day(-days_ago), rid=f"mri-{code}-{days_ago}")


def test_cancer_history_without_spine_imaging_leads_with_imaging_not_therapy(client):
    body = hook_request("order-sign", conditions=[radiculopathy(), condition("Z85.3", onsetDateTime=day(-900))],
                        imaging_reports=[])
    card = only_card(call(client, ORDER_SIGN, body))
    assert (card["indicator"], card["summary"]) == ("warning", "Z85.3 on record: MRI or CT of the spine first, before "
                                                               "lumbar ESI")
    assert suggestion_codes(card) == ["72148"]
    assert [s["label"] for s in card["suggestions"]] == ["Order an MRI of the spine first"]
    assert "No conservative therapy documented" in card["detail"].split("**Also:**")[1]
    assert "**Image first:**" in card["detail"] and "nice.org.uk/guidance/ng59" in card["detail"]


@pytest.mark.parametrize("imaging,draft,image_first", [
    ([mri("72148", 100)], "64483", False),   # a lumbar MRI 100 days ago answers a lumbar ESI
    ([mri("72141", 100)], "64483", True),    # a cervical MRI does not
    ([mri("72131", 700)], "64483", False),   # a lumbar CT within 24 months, before an injection
    ([mri("72148", 800)], "64483", True),    # ... not older
    ([mri("72148", 150)], "63047", False),   # within 6 months before surgery
    ([mri("72148", 200)], "63047", True),    # ... not older
])
def test_spine_imaging_of_the_region_in_the_window_answers_the_flag(client, imaging, draft, image_first):
    body = hook_request("order-sign", orders=[esi_order(code=draft)], procedures=imaging + pt_visits(90, 48),
                        conditions=[radiculopathy(), condition("C50.911", onsetDateTime=day(-400))], imaging_reports=[])
    said = " ".join(card["summary"] for card in call(client, ORDER_SIGN, body).json()["cards"])
    assert ("MRI or CT of the spine first" in said) is image_first


@pytest.mark.parametrize("flag,onset,flagged", [
    (condition("R50.9", rid="fever", onsetDateTime=day(-10)), None, True),
    (condition("R50.9", rid="fever", onsetDateTime=day(-40)), None, False),    # fever is recent or nothing
    (condition("R63.4", rid="wl", onsetDateTime=day(-100)), None, True),
    (condition("Z94.0", rid="tx", onsetDateTime=day(-3000)), None, True),     # kidney transplant status
    (condition("F11.20", rid="oud", onsetDateTime=day(-300)), None, True),    # opioid dependence
    (condition("C61", status="resolved", rid="ca", onsetDateTime=day(-3000)), None, True),  # cancer in the past
])
def test_each_image_first_flag(client, flag, onset, flagged):
    body = hook_request("order-sign", conditions=[radiculopathy(), flag], procedures=pt_visits(90, 48),
                        imaging_reports=[])
    said = " ".join(card["summary"] for card in call(client, ORDER_SIGN, body).json()["cards"])
    assert ("MRI or CT of the spine first" in said) is flagged


def test_a_transplant_drug_is_immunosuppression(client):
    tacrolimus = {"resourceType": "MedicationRequest", "id": "tac", "status": "active", "intent": "order",
                  "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "1664463",
                                                            "display": "24 HR tacrolimus 1 MG Extended Release Oral Tablet"}]},
                  "subject": {"reference": "Patient/p1"}, "authoredOn": day(-200)}
    body = hook_request("order-sign", procedures=pt_visits(90, 48), medication_requests=[tacrolimus],
                        imaging_reports=[])
    card = only_card(call(client, ORDER_SIGN, body))
    assert card["summary"].startswith("24 HR tacrolimus 1 MG Extended Release") and "MRI or CT" in card["summary"]


@pytest.mark.parametrize("display,flagged", [("Adenocarcinoma of pancreas", True),
                                             ("Family history of malignant neoplasm of breast", False),
                                             ("Carcinoma in situ of breast", False),
                                             ("Benign neoplasm of colon", False)])
def test_a_cancer_named_only_in_words_is_read_from_the_text(client, display, flagged):
    words = condition("999999991", SNOMED, rid="words", onsetDateTime=day(-500))
    words["code"] = {"coding": [{"system": SNOMED, "code": "999999991", "display": display}], "text": display}
    body = hook_request("order-sign", conditions=[radiculopathy(), words], procedures=pt_visits(90, 48),
                        imaging_reports=[])
    said = " ".join(card["summary"] for card in call(client, ORDER_SIGN, body).json()["cards"])
    assert ("(read from its text) on record: MRI or CT" in said) is flagged


def test_a_red_flag_named_only_in_words_stops_the_injection_and_says_it_read_the_text(client):
    """A GP system's SNOMED 111633007 is in no value set: its words name the cauda equina."""
    words = condition("111633007", SNOMED, rid="gp", onsetDateTime=day(-3))
    display = "Open fracture of sacrum and/or coccyx with complete cauda equina lesion"
    words["code"] = {"coding": [{"system": SNOMED, "code": "111633007", "display": display}], "text": display}
    card = only_card(call(client, ORDER_SIGN, hook_request("order-sign", conditions=[radiculopathy(), words])))
    assert card["indicator"] == "critical" and card["summary"].startswith("Red flag on record (Open fracture of sacrum")
    assert "Red flag read from the diagnosis text (its codes are in no value set)" in card["detail"]


@pytest.mark.parametrize("number,as_of,named", [
    ("765583", "2012-02-15", "Overlapping malignant neoplasm of femal"),  # breast cancer the day before her backache
    ("1272431", "2012-04-01", "Primary malignant neoplasm of prostate"),   # prostate and kidney cancer
])
def test_smart_patients_with_cancer_are_told_to_image_first(tmp_path, number, as_of, named):
    pid, resources = smart_patient(number)
    [card] = evaluate(tmp_path, request(pid, resources, draft=order("64483")), as_of)
    assert card["summary"].startswith(named) and "MRI or CT of the spine first" in card["summary"]
    assert not any("physical therapy" in s["label"].lower() for s in card.get("suggestions") or ())


def test_a_synthea_patient_on_tacrolimus_is_told_to_image_first(tmp_path):
    pid, resources = patient("4c40ad08")
    [card] = evaluate(tmp_path, request(pid, resources, draft=order("64483")), "2025-06-01")
    lines = [card["summary"], *card["detail"].splitlines()]
    assert any("MRI or CT of the spine first" in line for line in lines)
    assert not any("physical therapy" in s["label"].lower() for s in card.get("suggestions") or ())


@pytest.mark.parametrize("report,image_first", [(imaging_report("72148", 60), False),
                                                (imaging_report("72148", 60, status="cancelled"), True),
                                                (imaging_report("72141", 60), True)])
def test_an_imaging_report_of_the_region_answers_the_flag(client, report, image_first):
    body = hook_request("order-sign", conditions=[radiculopathy(), condition("Z85.3", onsetDateTime=day(-900))],
                        procedures=pt_visits(90, 48), imaging_reports=[report])
    said = " ".join(card["summary"] for card in call(client, ORDER_SIGN, body).json()["cards"])
    assert ("MRI or CT of the spine first" in said) is image_first


def test_imaging_reports_missing_from_prefetch_are_fetched_and_a_failure_is_no_refusal(client, httpx_mock):
    server = "https://ehr.example.org/fhir"
    body = hook_request("order-sign", conditions=[radiculopathy(), condition("Z85.3", onsetDateTime=day(-900))],
                        procedures=pt_visits(90, 48), observations=baseline_scores(), omit=("imagingReports",))
    body.update(fhirServer=server, fhirAuthorization={"access_token": "T", "token_type": "Bearer", "expires_in": 300,
                                                       "scope": "user/*.read", "subject": "svc"})
    httpx_mock.add_response(url=re.compile(r".*/DiagnosticReport\?patient=p1&code=.*72148.*"), json={
        "resourceType": "Bundle", "type": "searchset", "entry": [{"resource": imaging_report("72148", 30)}]})
    assert call(client, ORDER_SIGN, body).json()["cards"] == []
    httpx_mock.add_response(url=re.compile(r".*/DiagnosticReport\?.*"), status_code=503)
    failed = call(client, ORDER_SIGN, {**body, "hookInstance": "another"})
    assert failed.status_code == 200 and "MRI or CT of the spine first" in failed.json()["cards"][0]["summary"]


def test_a_long_red_flag_name_is_never_cut_in_the_summary(client):
    """Issue 33, point 7: "Other spondylosis with myelopathy, cerv…": the rest of the summary is shortened instead,
    and the detail names the red flag without a resource id."""
    name = "Other spondylosis with myelopathy, cervical region"
    myelopathy = {**condition("M47.12", rid="flag-1", onsetDateTime=day(-3)), "code": {"coding": [
        {"system": ICD10, "code": "M47.12", "display": name}], "text": name}}
    body = hook_request("order-sign", orders=[esi_order(code="64479")], conditions=[radiculopathy(), myelopathy])
    card = call(client, ORDER_SIGN, body).json()["cards"][0]
    assert card["indicator"] == "critical" and name in card["summary"] and len(card["summary"]) < 140
    assert "Condition/flag-1" not in card["detail"] and "flag-1" not in card["detail"]
