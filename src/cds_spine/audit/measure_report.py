"""The Measure scored as a FHIR R4 MeasureReport, for the live audit and a bulk run alike."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.measurereport import MeasureReport
from sqlalchemy import Engine

from .measure import MeasureDefinition
from .orders import OrderRow, ReportPeriod, order_rows
from .scoring import Counts, Scoring

POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
DECISION_IDENTIFIER = "https://cds-spine.org/fhir/NamingSystem/audit-decision"


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _populations(counts: Counts, initial: int, subjects: dict[str, str] | None = None) -> list[dict[str, Any]]:
    found = []
    for code, count in (("initial-population", initial), ("denominator", counts.denominator),
                        ("denominator-exclusion", counts.excluded), ("numerator", counts.numerator)):
        population = {"code": _concept(POPULATION_SYSTEM, code), "count": count}
        if subjects is not None:
            population["subjectResults"] = {"reference": f"#{subjects[code]}"}
        found.append(population)
    return found


def _score(counts: Counts) -> dict[str, Any]:
    return {"measureScore": {"value": counts.rate}} if counts.rate is not None else {}


def _subject_list(list_id: str, title: str, rows: list[OrderRow], identifier_system: str) -> dict[str, Any]:
    """A contained List of the orders behind one count: each names the audit decision (GET
    /audit/decisions/{id}) or, in a bulk run, the Procedure, and in its display the order."""
    return {"resourceType": "List", "id": list_id, "status": "current", "mode": "snapshot", "title": title,
            "entry": [{"item": {"identifier": {"system": identifier_system, "value": row.call_id},
                                "display": f"{row.kind} {row.region} {row.received_at.date().isoformat()} "
                                           f"order {row.assessment_id}"}} for row in rows]}


def scored(scoring: Scoring, start: date, end: date, now: datetime, identifier_system: str = DECISION_IDENTIFIER
           ) -> dict[str, Any]:
    """The Measure scored as a FHIR R4 MeasureReport (summary, or subject-list with the orders behind each
    group's counts when rows were kept), one group per component, stratified; validated with
    fhir.resources."""
    measure, tally, subject_list = scoring.measure, scoring.tally, scoring.tally.keep_rows
    contained, groups = [], []
    for index, component in enumerate(measure.components):
        counts = tally.components[component.id]
        subjects = None
        if subject_list:
            members = {"initial-population": tally.rows,
                       "denominator": [r for r in tally.rows if component.id in r.outcomes],
                       "denominator-exclusion": [r for r in tally.rows
                                                 if r.outcomes.get(component.id) == "excluded"],
                       "numerator": [r for r in tally.rows if r.outcomes.get(component.id) == "met"]}
            subjects = {code: f"g{index}-{code}" for code in members}
            contained += [_subject_list(subjects[code], f"{component.title}: {code}", rows, identifier_system)
                          for code, rows in members.items()]
        group = {"id": component.id, "code": measure.resource["group"][index]["code"],
                 "population": _populations(counts, tally.orders, subjects), **_score(counts)}
        stratifiers = []
        for stratifier in measure.stratifiers:
            stratum = [{"value": {"text": scoring.labels.of(value) if stratifier.id == "clinician" else value},
                        "population": _populations(part.components[component.id], part.orders),
                        **_score(part.components[component.id])}
                       for value, part in sorted(scoring.strata[stratifier.id].items())]
            stratifiers.append({"code": [measure.stratifier_code(stratifier.id)], "stratum": stratum})
        group["stratifier"] = stratifiers
        groups.append(group)
    report = {"resourceType": "MeasureReport", "status": "complete",
              "type": "subject-list" if subject_list else "summary", "measure": measure.canonical,
              "date": now.isoformat(), "period": {"start": start.isoformat(), "end": end.isoformat()},
              "improvementNotation": measure.resource["improvementNotation"], "group": groups}
    if contained:
        report = {"resourceType": "MeasureReport", "contained": contained,
                  **{key: value for key, value in report.items() if key != "resourceType"}}
    MeasureReport.model_validate(report)
    return report


def measure_report(engine: Engine, measure: MeasureDefinition, start: date, end: date, now: datetime,
                   subject_list: bool = False) -> dict[str, Any]:
    """The audit store's orders of a period, scored as a FHIR R4 MeasureReport (`scored`)."""
    scoring = Scoring(measure, keep_rows=subject_list)
    for row in order_rows(engine, ReportPeriod(start, end), measure):
        scoring.add(row)
    return scored(scoring, start, end, now)


