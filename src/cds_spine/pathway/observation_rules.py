"""The rules that read Observations: baseline scores before an ESI, the response to the last ESI in the region,
and readiness for elective fusion. Each gives findings (a warning, an info card, or notes for the detail and
the audit) and the readings it read."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from .findings import Finding, finding
from .injections import PriorInjection
from .knowledge import Knowledge
from .record import PatientRecord
from .scores import Reading, Response, latest, number, readings, responses, smokes


class ScoresOnRecord:
    """The pain and function scores of a record, each with its readings, read once per call."""

    def __init__(self, record: PatientRecord, knowledge: Knowledge) -> None:
        self.by_score = [(score, readings(record, knowledge, score))
                         for score in knowledge.config.observations.scores]

    def between(self, first: date, last: date) -> list[Reading]:
        """Every reading of every score from `first` to `last`, inclusive, oldest first."""
        return sorted((reading for _, found in self.by_score for reading in found if first <= reading.day <= last),
                      key=lambda reading: (reading.day, reading.label))


def esi_score_findings(knowledge: Knowledge, scores: ScoresOnRecord, same_region: Sequence[PriorInjection],
                       region: str, today: date) -> tuple[list[Finding], list[Reading]]:
    """Baseline scores for the ESI ordered today, and the response to the last ESI in its region."""
    rule = knowledge.config.rules.esi
    findings: list[Finding] = []
    since = today - timedelta(days=rule.baseline_days)
    baseline = [(score.kind, latest(found, since, today)) for score, found in scores.by_score]
    shown = [reading for _, reading in baseline if reading]
    documented = {kind for kind, reading in baseline if reading}
    missing = [kind for kind in ("pain", "function") if kind not in documented]
    if missing:
        findings.append(finding(knowledge, "esi-baseline-undocumented",
                                scores=knowledge.config.observations.joiner.join(missing), days=rule.baseline_days))
    if same_region:
        last = same_region[-1]
        found = responses(knowledge, scores.by_score, last.day, today)
        if found is not None:
            findings.append(_response_finding(knowledge, found, last, region))
            shown += [reading for response in found for reading in (response.before, response.after)]
    return findings, shown


def _response_finding(knowledge: Knowledge, found: Sequence[Response], last: PriorInjection, region: str
                      ) -> Finding:
    if not found:
        return finding(knowledge, "esi-response-undocumented", [last.reference], region=region,
                       date=last.day.isoformat())
    rule = knowledge.config.rules.esi.response
    judged = [response for response in found if response.rated] or list(found)  # the LCD's scales first
    evidence = [last.reference, *(r.reference for response in judged for r in (response.before, response.after))]
    responded = [response for response in judged if response.responded(rule.min_percent)]
    shown = (responded or judged)[0]  # pain first, when it is documented
    facts = {"region": region, "date": last.day.isoformat(), "measure": shown.before.label,
             "before": shown.before.shown, "after": shown.after.shown,
             "before_date": shown.before.day.isoformat(), "after_date": shown.after.day.isoformat()}
    if responded:
        return finding(knowledge, "esi-response-documented", evidence, **facts)
    points = shown.score.min_points
    shortfall = (rule.shortfall_points.format(value=number(points), relief=number(round(shown.improvement, 1)))
                 if points is not None else rule.shortfall_percent.format(
                     value=number(rule.min_percent), relief=number(round(shown.percent))))
    return finding(knowledge, "esi-poor-response", evidence, **facts, shortfall=shortfall)


def readiness_findings(knowledge: Knowledge, record: PatientRecord, today: date) -> tuple[list[Finding], list[Reading]]:
    """Elective fusion: a current smoker, or a recent HbA1c at or over the threshold (each an info card)."""
    rule = knowledge.config.rules.surgery.readiness
    findings: list[Finding] = []
    smoker = smokes(record, knowledge, today)
    if smoker:
        findings.append(finding(knowledge, "fusion-smoker", [smoker[1]], date=smoker[0].isoformat()))
    hba1c = latest(readings(record, knowledge, knowledge.config.observations.hba1c),
                   today - timedelta(days=rule.hba1c_days), today)
    if hba1c and hba1c.value >= rule.max_hba1c:
        findings.append(finding(knowledge, "fusion-hba1c", [hba1c.reference], value=number(hba1c.value),
                                date=hba1c.day.isoformat(), limit=number(rule.max_hba1c)))
    return findings, [hba1c] if hba1c else []
