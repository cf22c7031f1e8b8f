"""Unit tests of the pathway's rules and boundaries, on typed records and a fixed `now`."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from support import CPT, ICD10, RXNORM, SNOMED

from cds_spine.pathway import Criteria, Decision, assess, classify_all, summarize_patient
from cds_spine.pathway.record import (
    Code,
    ConditionEntry,
    DraftOrder,
    MedicationEntry,
    PatientRecord,
    Period,
    ProcedureEntry,
    Reason,
    ServiceRequestEntry,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def order(code: str = "64483", system: str = CPT, reference: str = "ServiceRequest/o1") -> DraftOrder:
    return DraftOrder(reference, (Code(system, code),), None, "draft")


def radicular(code: str = "M54.16", system: str = ICD10, status: str | None = "active",
              verification: str | None = None, abated: bool = False, ref: str = "Condition/dx") -> ConditionEntry:
    return ConditionEntry(ref, (Code(system, code, "dx"),), None, status, verification, ago(400), abated)


def visit(days_ago: int, code: str = "97110", system: str = CPT, status: str = "completed",
          end_days_ago: int | None = None, ref: str | None = None) -> ProcedureEntry:
    end = ago(end_days_ago) if end_days_ago is not None else ago(days_ago)
    return ProcedureEntry(ref or f"Procedure/{code}-{days_ago}", (Code(system, code),), None, status,
                          Period(ago(days_ago), end if status != "in-progress" or end_days_ago else None))


def statement(start: int, end: int | None, code: str | None = "197806", text: str | None = None,
              status: str = "completed") -> MedicationEntry:
    codes = (Code(RXNORM, code),) if code else ()
    return MedicationEntry(f"MedicationStatement/{code}-{start}", codes, text, status, start=ago(start),
                           stated_end=ago(end) if end is not None else None)


def esi_done(days_ago: int, code: str = "64483") -> ProcedureEntry:
    return visit(days_ago, code=code, ref=f"Procedure/esi-{days_ago}")


def run(knowledge, record: PatientRecord, draft: DraftOrder | None = None, session=()):
    draft = draft or order()
    [assessment] = assess(classify_all([draft], knowledge), record, knowledge, NOW, session_orders=session)
    return assessment


DOCUMENTATION = {"esi-baseline-undocumented", "esi-response-undocumented", "imaging-undocumented"}
"""The findings of what the payers ask to be documented, tested in test_scores.py and test_imaging.py: the scores
and the spine imaging (these records hold none)."""


def codes_of(assessment) -> list[str]:
    """The findings a card can lead with, but those of documentation (test_scores.py, test_imaging.py)."""
    return [f.code for f in assessment.findings if f.leads_a_card and f.code not in DOCUMENTATION]


def with_dx(**parts) -> PatientRecord:
    return PatientRecord(conditions=(radicular(),) + tuple(parts.pop("conditions", ())), **parts)


# --- classification --------------------------------------------------------------------------------

@pytest.mark.parametrize("code,system,category,region,detail", [
    ("64483", CPT, "esi", "lumbar-sacral", "imaging"),
    ("62321", CPT, "esi", "cervical-thoracic", "imaging"),
    ("62322", CPT, "esi", "lumbar-sacral", "none"),
    ("0230T", CPT, "esi", "lumbar-sacral", "ultrasound"),
    ("22612", CPT, "surgery", "lumbar", "fusion"),
    ("63030", CPT, "surgery", "lumbar", "discectomy"),
    ("63045", CPT, "surgery", "cervical", "decompression"),
    ("55705006", SNOMED, "surgery", "unspecified", "fusion"),
    ("urn:oid", "urn:oid:2.16.840.1.113883.6.12", "esi", "lumbar-sacral", "imaging"),
])
def test_orders_are_classified_by_code(knowledge, code, system, category, region, detail):
    if code == "urn:oid":
        code = "64483"
    [found] = classify_all([order(code, system)], knowledge)
    assert (found.category, found.region, found.guidance or found.kind) == (category, region, detail)


@pytest.mark.parametrize("code,system", [("18946005", SNOMED), ("99213", CPT), ("72148", CPT), ("", CPT)])
def test_other_orders_are_not_ours(knowledge, code, system):
    assert classify_all([order(code, system)], knowledge) == []


# --- conservative duration ---------------------------------------------------------------------------

@pytest.mark.parametrize("days,decision", [(27, Decision.NOT_MET), (28, Decision.MET)])
def test_esi_needs_28_days(knowledge, days, decision):
    result = run(knowledge, with_dx(medications=(statement(60, 60 - days + 1),)))
    assert (result.history.days, result.decision) == (days, decision)


@pytest.mark.parametrize("days,decision", [(41, Decision.NOT_MET), (42, Decision.MET)])
def test_surgery_needs_42_days(knowledge, days, decision):
    result = run(knowledge, with_dx(medications=(statement(90, 90 - days + 1),)), order("63047"))
    assert result.decision is decision


SPONDYLOLISTHESIS = radicular("M43.16", ref="Condition/spondy")


@pytest.mark.parametrize("days,decision", [(89, Decision.NOT_MET), (90, Decision.MET)])
def test_lumbar_fusion_for_spondylolisthesis_needs_three_months(knowledge, days, decision):
    record = with_dx(conditions=(SPONDYLOLISTHESIS,), medications=(statement(120, 120 - days + 1),))
    result = run(knowledge, record, order("22612"))
    assert result.decision is decision and result.required_days == 90
    assert "fusion-without-instability" not in codes_of(result)


@pytest.mark.parametrize("code", ["M51.26", "M48.061", "M48.062", "M51.16", "724.71", "M96.1", "M53.2X8"])
def test_lumbar_fusion_needs_instability_not_herniation_or_stenosis(knowledge, code):
    """Disc displacement, stenosis without instability, post-laminectomy pain, coccyx hypermobility: not covered."""
    system = "http://hl7.org/fhir/sid/icd-9-cm" if code == "724.71" else ICD10
    record = PatientRecord(conditions=(radicular(code, system),), medications=(statement(200, 10),))
    result = run(knowledge, record, order("22612"))
    assert codes_of(result)[0] == "fusion-without-instability"
    assert dict(result.findings[0].facts)["indication"] == "spondylolisthesis, instability or fracture"


def test_a_cervical_fusion_treats_radiculopathy(knowledge):
    record = PatientRecord(conditions=(radicular("M54.12"),), medications=(statement(120, 10),))
    assert codes_of(run(knowledge, record, order("22551"))) == []


@pytest.mark.parametrize("code,found", [("M51.36", []), ("M51.362", []),
                                        ("M48.061", ["surgery-contraindicated", "no-surgery-indication"])])
def test_lumbar_disc_arthroplasty_needs_disc_disease_and_no_stenosis(knowledge, code, found):
    record = PatientRecord(conditions=(radicular(code),), medications=(statement(300, 10),))
    result = run(knowledge, record, order("22857"))
    assert codes_of(result) == found and result.required_days == 180


def test_short_therapy_is_named_with_its_days(knowledge):
    result = run(knowledge, with_dx(medications=(statement(20, 10),)))
    assert codes_of(result) == ["conservative-short"]
    assert dict(result.findings[0].facts) == {"days": 11, "therapy": "11 days of conservative therapy", "required": 28,
                                              "order": "lumbar ESI"}


def test_visits_of_one_modality_are_counted_as_a_clinician_counts_them(knowledge):
    """Issue 33, point 7: "43 days of conservative therapy" for seven weekly visits."""
    result = run(knowledge, with_dx(procedures=tuple(visit(days) for days in range(60, 17, -7))))
    assert result.history.phrase(knowledge) == "7 physical therapy visits over 6 weeks" and result.history.days == 43
    one = run(knowledge, with_dx(procedures=(visit(10),)))
    assert one.findings[0].facts["therapy"] == "1 physical therapy visit on one day"


def test_nothing_tried_is_missing(knowledge):
    result = run(knowledge, with_dx())
    assert codes_of(result) == ["conservative-missing"]
    assert result.findings[0].severity == "warning"


def test_weekly_visits_make_one_episode(knowledge):
    visits = tuple(visit(d) for d in range(90, 47, -7))
    assert run(knowledge, with_dx(procedures=visits)).history.days == 43


@pytest.mark.parametrize("gap,days", [(30, 32), (31, 1)])
def test_gaps_of_at_most_30_days_are_bridged(knowledge, gap, days):
    visits = (visit(100), visit(100 - gap - 1))
    assert run(knowledge, with_dx(procedures=visits)).history.days == days


def test_longest_episode_wins_not_the_sum(knowledge):
    visits = (visit(300), visit(290), visit(100), visit(80), visit(60))
    assert run(knowledge, with_dx(procedures=visits)).history.days == 41


@pytest.mark.parametrize("age,code", [(364, "conservative-short"), (365, "conservative-short"),
                                      (366, "conservative-missing")])
def test_lookback_is_365_days(knowledge, age, code):
    assert codes_of(run(knowledge, with_dx(procedures=(visit(age),)))) == [code]


def test_intervals_are_clipped_to_the_lookback(knowledge):
    long_course = statement(400, 350)
    assert run(knowledge, with_dx(medications=(long_course,))).history.days == 16


# --- statuses -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("status,counts", [("completed", True), ("in-progress", True), ("not-done", False),
                                           ("entered-in-error", False), ("preparation", False)])
def test_procedure_statuses(knowledge, status, counts):
    result = run(knowledge, with_dx(procedures=(visit(40, status=status, end_days_ago=5),)))
    assert bool(result.history.evidence) is counts


def test_in_progress_therapy_runs_until_today(knowledge):
    ongoing = ProcedureEntry("Procedure/pt", (Code(CPT, "97110"),), None, "in-progress", Period(ago(29), None))
    assert run(knowledge, with_dx(procedures=(ongoing,))).history.days == 30


@pytest.mark.parametrize("status,counts", [("active", True), ("completed", True), ("stopped", True),
                                           ("not-taken", False), ("entered-in-error", False), ("intended", False)])
def test_medication_statement_statuses(knowledge, status, counts):
    assert bool(run(knowledge, with_dx(medications=(statement(40, 5, status=status),))).history.evidence) is counts


def test_active_statement_without_end_runs_until_today(knowledge):
    assert run(knowledge, with_dx(medications=(statement(27, None, status="active"),))).history.days == 28


def request_entry(status: str = "active", authored: int = 100, end: int | None = 71,
                  course_type: str | None = None) -> MedicationEntry:
    return MedicationEntry(f"MedicationRequest/{status}-{authored}", (Code(RXNORM, "197806"),), None, status,
                           start=ago(authored), stated_end=ago(end) if end is not None else None,
                           course_type=course_type)


@pytest.mark.parametrize("entry,days", [
    (request_entry(end=71), 30),
    (request_entry("completed", end=None), 1),
    (request_entry("stopped", end=None), 1),
    (request_entry("active", end=None), 101),
    (request_entry("active", authored=500, end=None), 366),
    (request_entry("active", end=None, course_type="acute"), 1),
])
def test_medication_request_duration(knowledge, entry, days):
    assert run(knowledge, with_dx(medications=(entry,))).history.days == days


def test_renewals_of_one_ingredient_join_one_course(knowledge):
    yearly = tuple(request_entry("completed", authored=d, end=None) for d in (1100, 730, 365)) + (
        request_entry("active", authored=10, end=None),)
    result = run(knowledge, with_dx(medications=yearly))
    assert result.history.days == 366
    [course] = result.history.evidence
    assert len(course.references) == 4  # one course, from the first order (clipped to the window) to today


@pytest.mark.parametrize("gap,joined", [(399, True), (401, False)])
def test_renewal_gap_boundary(knowledge, gap, joined):
    orders = (request_entry("completed", authored=gap + 2, end=None), request_entry("completed", authored=1, end=None))
    result = run(knowledge, with_dx(medications=orders))
    assert result.history.days == (365 if joined else 1)


@pytest.mark.parametrize("status,counts", [("active", True), ("completed", True), ("stopped", True),
                                           ("draft", False), ("cancelled", False), ("entered-in-error", False)])
def test_medication_request_statuses(knowledge, status, counts):
    assert bool(run(knowledge, with_dx(medications=(request_entry(status),))).history.evidence) is counts


def pt_service_request(status: str) -> ServiceRequestEntry:
    return ServiceRequestEntry(f"ServiceRequest/{status}", (Code(SNOMED, "91251008"),), None, status,
                               Period(ago(60), ago(20)), ago(70))


@pytest.mark.parametrize("status,counts", [("completed", True), ("active", False), ("revoked", False)])
def test_only_completed_referrals_count(knowledge, status, counts):
    result = run(knowledge, with_dx(service_requests=(pt_service_request(status),)))
    assert bool(result.history.evidence) is counts
    assert ([r.reference for r in result.pending_referrals] == ["ServiceRequest/active"]) is (status == "active")


def test_completed_referral_without_occurrence_uses_authored_on(knowledge):
    entry = ServiceRequestEntry("ServiceRequest/sr", (Code(SNOMED, "91251008"),), None, "completed", None, ago(5))
    assert run(knowledge, with_dx(service_requests=(entry,))).history.evidence[0].start == ago(5)


# --- what counts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("code,system", [("97010", CPT), ("97012", CPT), ("97014", CPT), ("266694003", SNOMED),
                                         ("77476009", SNOMED), ("52052004", SNOMED)])
def test_passive_or_ambiguous_measures_never_count_and_are_named(knowledge, code, system):
    visits = tuple(visit(d, code=code, system=system) for d in range(90, 20, -7))
    result = run(knowledge, with_dx(procedures=visits))
    assert result.history.evidence == ()
    [line] = result.history.not_counted
    assert len(line.references) == len(visits)


@pytest.mark.parametrize("code,system", [("97110", CPT), ("98940", CPT), ("97810", CPT), ("97124", CPT),
                                         ("229064008", SNOMED), ("229070002", SNOMED)])
def test_active_modalities_count(knowledge, code, system):
    assert run(knowledge, with_dx(procedures=(visit(40, code=code, system=system),))).history.evidence


PAIN_REASON = Reason((Code(ICD10, "G89.29"),))
DEPRESSION = Reason((Code(ICD10, "F32.9"),), "Major depressive disorder")
DIABETIC_NEUROPATHY = Reason((Code(ICD10, "E11.40"),), "Type 2 diabetes with diabetic neuropathy")


def drug(code: str, reasons: tuple[Reason, ...] = (), days: int = 200) -> MedicationEntry:
    return MedicationEntry(f"MedicationRequest/{code}-{len(reasons)}", (Code(RXNORM, code),), None, "active",
                           start=ago(days), reasons=reasons)


@pytest.mark.parametrize("reasons,counts", [((), False), ((PAIN_REASON,), True), ((DEPRESSION,), False)])
def test_psychotherapy_is_therapy_for_the_spine_only_with_a_pain_reason(knowledge, reasons, counts):
    """Issue 33, point 2: any psychotherapy read as CBT for the spine; now it needs a spine or pain reason (or
    to have followed the spine problem)."""
    cbt = ProcedureEntry("Procedure/cbt", (Code(SNOMED, "228557008"),), None, "completed", Period(ago(40), ago(40)),
                         reasons=reasons)
    assert bool(run(knowledge, with_dx(procedures=(cbt,))).history.evidence) is counts


@pytest.mark.parametrize("code,reasons,counts", [
    ("596926", (DEPRESSION,), False),  # duloxetine 30 MG for depression, taken long-term
    ("310431", (DIABETIC_NEUROPATHY,), False),  # gabapentin 100 MG for diabetic neuropathy, long-term
    ("596926", (PAIN_REASON,), True),
    ("596926", (), False),  # no reason, and it did not follow the spine problem
    ("197806", (Reason((Code(ICD10, "M17.11"),), "Primary osteoarthritis, right knee"),), True),  # an analgesic
])
def test_antidepressants_and_gabapentinoids_count_only_for_pain(knowledge, code, reasons, counts):
    """Issue 33, point 2: duloxetine for depression and gabapentin for diabetic neuropathy gave "criteria met";
    a systemic analgesic taken long-term for another condition still counts (the class has been tried)."""
    assert bool(run(knowledge, with_dx(medications=(drug(code, reasons),))).history.evidence) is counts


@pytest.mark.parametrize("code,text", [
    ("197806", None),  # ibuprofen SCD
    ("206905", None),  # ibuprofen SBD [Ibu]
    ("209387", None),  # acetaminophen SBD [Tylenol]
    (None, "Naproxen 500 mg tablet"),
    ("999999999", "cyclobenzaprine 10 mg"),
])
def test_medications_by_code_or_ingredient_name(knowledge, code, text):
    assert run(knowledge, with_dx(medications=(statement(40, 5, code=code, text=text),))).history.days == 36


@pytest.mark.parametrize("code,text", [("1049625", None), ("856987", None), (None, "oxycodone and acetaminophen"),
                                       ("999999999", "Acetaminophen 325 MG / Hydrocodone 5 MG")])
def test_opioids_never_count_even_with_acetaminophen(knowledge, code, text):
    result = run(knowledge, with_dx(medications=(statement(40, 5, code=code, text=text),)))
    assert result.history.evidence == ()
    assert [item.reason for item in result.history.not_counted] == ["opioid"]


def test_known_non_conservative_code_is_not_rescued_by_its_text(knowledge):
    # A code a value set knows decides; the ingredient fallback is for unknown codes only.
    entry = MedicationEntry("MedicationStatement/x", (Code(RXNORM, "1049625", "oxycodone"),), "ibuprofen",
                            "completed", start=ago(40), stated_end=ago(5))
    assert run(knowledge, with_dx(medications=(entry,))).history.evidence == ()


def test_prior_esi_counts_for_surgery_not_for_esi(knowledge):
    record = with_dx(procedures=(esi_done(40), esi_done(20)))
    assert run(knowledge, record, order("22612")).history.days == 21
    assert run(knowledge, record).history.evidence == ()


# --- diagnoses and red flags ------------------------------------------------------------------------

@pytest.mark.parametrize("code,system", [("M54.16", ICD10), ("M5416", ICD10), ("M48.062", ICD10),
                                         ("128196005", SNOMED), ("23056005", SNOMED),
                                         ("M54.16", "urn:oid:2.16.840.1.113883.6.90")])
def test_qualifying_diagnosis_in_icd10_or_snomed(knowledge, code, system):
    record = PatientRecord(conditions=(radicular(code, system),), procedures=tuple(visit(d) for d in (60, 30)))
    assert "no-qualifying-diagnosis" not in codes_of(run(knowledge, record))


@pytest.mark.parametrize("condition", [radicular("M54.50"), radicular(status="resolved"),
                                       radicular(verification="refuted"), radicular(status=None, abated=True)])
def test_axial_only_or_inactive_diagnosis_is_flagged(knowledge, condition):
    record = PatientRecord(conditions=(condition,), procedures=tuple(visit(d) for d in (60, 30)))
    assert codes_of(run(knowledge, record)) == ["no-qualifying-diagnosis"]


def test_condition_without_clinical_status_and_abatement_is_active(knowledge):
    record = PatientRecord(conditions=(radicular(status=None),), procedures=tuple(visit(d) for d in (60, 30)))
    assert codes_of(run(knowledge, record)) == []


def flag(code: str, system: str = ICD10, onset_days: int = 20, ref: str = "Condition/flag",
         status: str | None = "active") -> ConditionEntry:
    return ConditionEntry(ref, (Code(system, code, "flag"),), None, status, None, ago(onset_days), False)


RED_FLAGS = [("G83.4", ICD10), ("192970008", SNOMED), ("M21.371", ICD10), ("S32.010A", ICD10), ("C41.2", ICD10),
             ("M46.26", ICD10), ("6077001", SNOMED), ("G06.1", ICD10)]


@pytest.mark.parametrize("code,system", RED_FLAGS)
def test_red_flags_waive_the_conservative_requirement_before_surgery(knowledge, code, system):
    record = with_dx(conditions=(flag(code, system),))
    result = run(knowledge, record, order("22612"))
    assert result.decision is Decision.EXEMPT
    assert codes_of(result) == ["red-flag"] and result.findings[0].severity == "info"


@pytest.mark.parametrize("code,system", RED_FLAGS)
@pytest.mark.parametrize("draft", ["64483", "62321", "0627T"])
def test_a_red_flag_stops_an_injection(knowledge, code, system, draft):
    """Nothing tried, and a red flag: the injection is stopped (critical, first), never "try therapy first"."""
    result = run(knowledge, with_dx(conditions=(flag(code, system),)), order(draft))
    assert result.decision is Decision.STOPPED
    assert result.lead.code == "red-flag-injection" and result.lead.severity == "critical"
    assert not {"conservative-missing", "conservative-short", "red-flag"} & set(codes_of(result))


@pytest.mark.parametrize("condition", [radicular("G83.4", status="resolved"), radicular("G83.4", verification="refuted"),
                                       radicular("G83.4", verification="entered-in-error"), radicular("S32.010S"),
                                       radicular("S32.010D"), radicular("R32")])
def test_inactive_refuted_healed_or_nonspecific_findings_are_not_red_flags(knowledge, condition):
    assert run(knowledge, with_dx(conditions=(condition,))).decision is Decision.NOT_MET


@pytest.mark.parametrize("code,days,red", [("G82.20", 180, True), ("G82.20", 181, False), ("M21.371", 90, True),
                                           ("M21.371", 91, False), ("S32.010A", 181, False), ("C41.2", 3000, True),
                                           ("M46.26", 3000, True)])
def test_a_red_flag_is_red_while_acute(knowledge, code, days, red):
    """A paraplegia of many years or an old fracture is history; malignancy and infection stay red while active."""
    result = run(knowledge, with_dx(conditions=(flag(code, onset_days=days),)))
    assert (result.decision is Decision.STOPPED) is red


def test_an_undated_red_flag_stays_red(knowledge):
    undated = ConditionEntry("Condition/flag", (Code(ICD10, "G82.20", "flag"),), None, "active", None, None, False)
    assert run(knowledge, with_dx(conditions=(undated,))).decision is Decision.STOPPED


def test_a_red_flag_leads_whatever_else_is_found(knowledge):
    """Cauda equina with an ESI 9 days ago and four in the year: the red flag leads, the rest is listed after it."""
    record = with_dx(conditions=(flag("G83.4", onset_days=2),),
                     procedures=tuple(esi_done(d) for d in (300, 200, 100, 9)))
    result = run(knowledge, record, order("62322"))
    assert codes_of(result) == ["red-flag-injection", "esi-limit-exceeded", "esi-too-soon", "no-imaging-guidance"]


@pytest.mark.parametrize("code,system,days,stopped", [("A41.9", ICD10, 3, True), ("91302008", SNOMED, 30, True),
                                                      ("R78.81", ICD10, 31, False), ("A41.9", ICD10, -2, False)])
def test_a_recent_systemic_infection_contraindicates_an_injection(knowledge, code, system, days, stopped):
    """Sepsis three days ago (resolved or not) stops an ESI even after enough therapy; it waives nothing before surgery."""
    sepsis = ConditionEntry("Condition/sepsis", (Code(system, code, "Sepsis"),), None, "resolved", None, ago(days),
                            True, ago(max(days - 2, 0)))
    record = with_dx(conditions=(sepsis,), procedures=tuple(visit(d) for d in (60, 30)))
    result = run(knowledge, record)
    assert (codes_of(result) == ["injection-contraindicated"]) is stopped
    assert (result.decision is Decision.STOPPED) is stopped
    assert run(knowledge, record, order("63047")).decision is not Decision.STOPPED


# --- injections -----------------------------------------------------------------------------------

@pytest.mark.parametrize("count,exceeded", [(3, False), (4, True)])
def test_at_most_four_esi_per_region_in_a_year(knowledge, count, exceeded):
    prior = tuple(esi_done(d) for d in (340, 250, 160, 70)[:count])
    result = run(knowledge, with_dx(procedures=prior + tuple(visit(d) for d in (60, 30))))
    assert ("esi-limit-exceeded" in codes_of(result)) is exceeded
    if exceeded:
        assert dict(result.findings[0].facts)["session"] == 5


def test_injections_in_another_region_or_over_a_year_ago_do_not_count(knowledge):
    prior = tuple(esi_done(d, "64479") for d in (300, 200, 100, 50)) + tuple(esi_done(d) for d in (500, 400, 370))
    result = run(knowledge, with_dx(procedures=prior + tuple(visit(d) for d in (60, 30))))
    assert codes_of(result) == []


@pytest.mark.parametrize("days,too_soon", [(13, True), (14, False)])
def test_at_least_14_days_between_injections(knowledge, days, too_soon):
    result = run(knowledge, with_dx(procedures=(esi_done(days),) + tuple(visit(d) for d in (60, 30))))
    assert ("esi-too-soon" in codes_of(result)) is too_soon


@pytest.mark.parametrize("code,flagged", [("62322", True), ("62320", True), ("0230T", True), ("0228T", True),
                                          ("62323", False), ("64483", False)])
def test_esi_without_fluoroscopic_or_ct_guidance_is_flagged(knowledge, code, flagged):
    result = run(knowledge, with_dx(procedures=tuple(visit(d) for d in (60, 30))), order(code))
    assert ("no-imaging-guidance" in codes_of(result)) is flagged


def test_conservative_finding_leads_among_warnings(knowledge):
    result = run(knowledge, with_dx(procedures=(esi_done(5),)))
    assert codes_of(result) == ["conservative-missing", "esi-too-soon"]


def test_warning_leads_info(knowledge):
    result = run(knowledge, with_dx(), order("62322"))
    assert codes_of(result) == ["conservative-missing", "no-imaging-guidance"]


def test_axial_pain_alone_leads_the_esi_card_before_the_therapy_it_lacks(knowledge):
    """Issue 33, point 7: "try physical therapy first" read as an ESI after it; for axial pain alone no therapy makes
    an ESI indicated, so that leads, and the card keeps the warning's indicator."""
    result = run(knowledge, PatientRecord(conditions=(radicular("M54.50"),)), order("64483"))
    assert [f.code for f in result.findings if f.leads_a_card][:2] == ["no-qualifying-diagnosis", "conservative-missing"]


def test_pending_referral_in_the_ordering_session(knowledge):
    referral = DraftOrder("ServiceRequest/pt", (Code(CPT, "97161"),), None, "draft")
    [pending] = run(knowledge, with_dx(), session=[order(), referral]).pending_referrals
    assert pending.reference == "ServiceRequest/pt"


# --- patient view ------------------------------------------------------------------------------------

def test_patient_summary_only_for_spine_diagnoses(knowledge):
    assert summarize_patient(PatientRecord(conditions=(radicular("I10"),)), knowledge, NOW) is None
    summary = summarize_patient(with_dx(procedures=(visit(60), visit(30), esi_done(20))), knowledge, NOW)
    assert (summary.history.days, summary.esi, summary.surgery_days, summary.surgery) == (
        31, Criteria.MET, 41, Criteria.NOT_MET)


@pytest.mark.parametrize("esis,criteria", [((100, 10), Criteria.TOO_SOON), ((300, 200, 100, 50), Criteria.LIMIT_REACHED),
                                           ((300, 200, 100), Criteria.MET)])
def test_patient_summary_applies_the_injection_rules_per_region(knowledge, esis, criteria):
    record = with_dx(procedures=(visit(90), visit(60), visit(30), *(esi_done(d) for d in esis)))
    summary = summarize_patient(record, knowledge, NOW)
    assert summary.esi is criteria
    [lumbar] = summary.injections
    assert [i.day for i in lumbar.injections] == sorted(i.day for i in lumbar.injections) and len(lumbar.injections) == len(esis)
    assert (summary.blocking is lumbar) is (criteria is not Criteria.MET)


def test_injections_in_another_region_do_not_block_an_esi(knowledge):
    cervical = tuple(esi_done(d, "62321") for d in (300, 200, 100, 50))
    summary = summarize_patient(with_dx(procedures=(visit(90), visit(60), visit(30), *cervical)), knowledge, NOW)
    assert summary.esi is Criteria.MET and summary.blocking is None and len(summary.injections) == 1


def test_evaluation_is_deterministic(knowledge):
    record = with_dx(procedures=tuple(visit(d) for d in (90, 60)), medications=(statement(20, 10),))
    assert run(knowledge, record) == run(knowledge, record)
