"""Spine imaging on record (issue 31): MRI and CT read however EHRs record them (Procedure, DiagnosticReport,
ImagingStudy in STU3, R4 and R5), fetched when prefetch lacks them, and an order without imaging of its region in
the window (24 months before an injection, 6 before surgery) told so, with its source."""
from __future__ import annotations

import re

import pytest
from support import (
    ORDER_SIGN,
    SNOMED,
    baseline_scores,
    call,
    condition,
    day,
    esi_order,
    hook_request,
    imaging_report,
    pt_visits,
    radiculopathy,
)

DCM = "http://dicom.nema.org/resources/ontology/DCM"
LUMBAR, CERVICAL = "122496007", "122494005"
SPINE_MRI = {"coding": [{"system": SNOMED, "code": "241645008", "display": "Magnetic resonance imaging of spine"}]}
XRAY = {"coding": [{"system": SNOMED, "code": "22791004", "display": "Plain X-ray of lumbosacral spine"}]}
NO_IMAGING = "No spine MRI or CT of this region on record in"


def study(days_ago: int, modality: str = "MR", site: str = LUMBAR, code: dict | None = SPINE_MRI,
          status: str = "available", rid: str = "mri-1") -> dict:
    """An ImagingStudy as Synthea's low back pain module writes one (R4): the region is the series' body site."""
    resource = {"resourceType": "ImagingStudy", "id": rid, "status": status, "subject": {"reference": "Patient/p1"},
                "started": f"{day(-days_ago)}T09:00:00Z", "numberOfSeries": 1,
                "series": [{"uid": "1.2.3", "number": 1, "modality": {"system": DCM, "code": modality},
                            "bodySite": {"system": SNOMED, "code": site}, "numberOfInstances": 1}]}
    if code:
        resource["procedureCode"] = [code]
    return resource


def stu3(resource: dict) -> dict:
    """The same study as STU3 writes it: `patient`, `modalityList`, no status."""
    read = {k: v for k, v in resource.items() if k not in ("subject", "status")}
    return {**read, "patient": resource["subject"], "modalityList": [resource["series"][0]["modality"]]}


def r5(resource: dict) -> dict:
    """The same study as R5 writes it: the series' modality a CodeableConcept, its body site a CodeableReference."""
    [series] = resource["series"]
    return {**resource, "series": [{**series, "modality": {"coding": [series["modality"]]},
                                    "bodySite": {"concept": {"coding": [series["bodySite"]]}}}]}


def summaries(response) -> str:
    return " | ".join(card["summary"] for card in response.json()["cards"])


def cancer_history(studies: list[dict], draft: str = "64483") -> dict:
    return hook_request("order-sign", orders=[esi_order(code=draft)], procedures=pt_visits(90, 48),
                        conditions=[radiculopathy(), condition("Z85.3", onsetDateTime=day(-900))],
                        observations=baseline_scores(), imaging_reports=[], imaging_studies=studies)


@pytest.mark.parametrize("studies,image_first", [
    ([study(60)], False),                                # Synthea's lumbar spine MRI answers a lumbar ESI
    ([stu3(study(60))], False),                          # ... written in STU3
    ([r5(study(60))], False),                            # ... or in R5
    ([study(60, code=None)], False),                     # an MR series of the lumbar spine, no procedure code
    ([study(60, modality="CT", code=None)], False),      # a CT series
    ([study(60, modality="CR", code=XRAY)], True),       # a radiograph is not cross-sectional imaging
    ([study(60, site=CERVICAL)], True),                  # a cervical MRI does not answer a lumbar ESI
    ([study(60, status="registered")], True),            # a study not done yet
    ([study(60, status="cancelled")], True),
    ([study(800)], True),                                # older than 24 months
])
def test_an_imaging_study_of_the_region_answers_an_image_first_flag(client, studies, image_first):
    said = summaries(call(client, ORDER_SIGN, cancer_history(studies)))
    assert ("MRI or CT of the spine first" in said) is image_first, said


def test_a_study_whose_region_cannot_be_told_does_not_answer_for_a_region(client):
    """The safe reading: an MRI of the spine with no body site could be of any region."""
    regionless = study(60)
    regionless["series"][0].pop("bodySite")
    said = summaries(call(client, ORDER_SIGN, cancer_history([regionless])))
    assert "MRI or CT of the spine first" in said


@pytest.mark.parametrize("draft,reports,card", [
    ("64483", [], True),                                   # an ESI, no imaging at all
    ("64483", [imaging_report("72148", 700)], False),      # a lumbar MRI within 24 months
    ("64483", [imaging_report("72148", 760)], True),       # ... not older
    ("64483", [imaging_report("72141", 30)], True),        # a cervical MRI is not of the lumbar spine
    ("63030", [imaging_report("72148", 150)], False),      # within 6 months before surgery
    ("63030", [imaging_report("72148", 200)], True),       # ... not older
])
def test_an_order_without_imaging_of_its_region_in_the_window_is_told_so(client, draft, reports, card):
    body = hook_request("order-sign", orders=[esi_order(code=draft)], procedures=pt_visits(90, 48),
                        observations=baseline_scores(), imaging_reports=reports)
    said = summaries(call(client, ORDER_SIGN, body))
    assert (NO_IMAGING in said) is card, said


def test_the_imaging_card_says_what_to_do_and_why(client):
    body = hook_request("order-sign", procedures=pt_visits(90, 48), observations=baseline_scores(),
                        imaging_reports=[])
    [card] = call(client, ORDER_SIGN, body).json()["cards"]
    assert card["indicator"] == "info"
    assert card["summary"] == (f"{NO_IMAGING} 24 months before lumbar ESI: attach the report or order one")
    [suggestion] = card["suggestions"]
    assert suggestion["label"] == "Order an MRI of the spine"
    [action] = suggestion["actions"]
    assert action["type"] == "create" and action["resource"]["code"]["coding"][0]["code"] == "72148"
    assert "**Imaging:**" in card["detail"] and "eviCore CMM-200" in card["detail"]
    reasons = {reason["display"] for reason in card["overrideReasons"]}
    assert "Spine MRI or CT done outside this record" in reasons
    assert "Physical therapy already ordered" not in reasons


def test_a_red_flag_or_an_image_first_flag_says_it_and_no_second_imaging_card(client):
    flagged = cancer_history([])
    cards = call(client, ORDER_SIGN, flagged).json()["cards"]
    assert [card["summary"].split(":")[0] for card in cards] == ["Z85.3 on record"]
    assert NO_IMAGING not in cards[0]["detail"]
    red_flag = hook_request("order-sign", conditions=[radiculopathy(), condition("G83.4", onsetDateTime=day(-2))],
                            imaging_reports=[])
    [card] = call(client, ORDER_SIGN, red_flag).json()["cards"]
    assert card["indicator"] == "critical" and NO_IMAGING not in card["summary"] + card["detail"]


def test_imaging_studies_missing_from_prefetch_are_fetched_by_modality_and_a_failure_is_no_refusal(client,
                                                                                                   httpx_mock):
    server = "https://ehr.example.org/fhir"
    body = hook_request("order-sign", procedures=pt_visits(90, 48), observations=baseline_scores(),
                        imaging_reports=[], omit=("imagingStudies",))
    body.update(fhirServer=server, fhirAuthorization={"access_token": "T", "token_type": "Bearer", "expires_in": 300,
                                                       "scope": "user/*.read", "subject": "svc"})
    httpx_mock.add_response(url=re.compile(rf"{server}/ImagingStudy\?patient=p1&modality=.*DCM\|MR.*"), json={
        "resourceType": "Bundle", "type": "searchset", "entry": [{"resource": study(30)}]})
    assert call(client, ORDER_SIGN, body).json()["cards"] == []
    httpx_mock.add_response(url=re.compile(rf"{server}/ImagingStudy\?.*"), status_code=503)
    failed = call(client, ORDER_SIGN, {**body, "hookInstance": "another"})
    assert failed.status_code == 200 and NO_IMAGING in summaries(failed)


def test_imaging_studies_are_asked_for_by_the_modalities_of_their_value_set(client, knowledge):
    for service in client.get("/cds-services").json()["services"]:
        path, query = service["prefetch"]["imagingStudies"].split("?")
        patient, modalities = query.split("&")
        assert (path, patient) == ("ImagingStudy", "patient={{context.patientId}}")
        asked = {tuple(item.split("|")) for item in modalities.removeprefix("modality=").split(",")}
        assert asked == {(DCM, "CT"), (DCM, "MR")} == set(knowledge.imaging_modalities())
