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
    """The pain and function scores of a record, read once per call."""

    def __init__(self, record: PatientRecord, knowledge: Knowledge) -> None:
        observations = knowledge.config.observations
        self.pain = readings(record, knowledge, observations.pain)
        self.function = readings(record, knowledge, observations.function)


def esi_score_findings(knowledge: Knowledge, scores: ScoresOnRecord, same_region: Sequence[PriorInjection],
                       region: str, today: date) -> tuple[list[Finding], list[Reading]]:
    """Baseline scores for the ESI ordered today, and the response to the last ESI in its region."""
    rule = knowledge.config.rules.esi
    observations = knowledge.config.observations
    findings: list[Finding] = []
    shown: list[Reading] = []
    since = today - timedelta(days=rule.baseline_days)
    baseline = [(score.label, latest(found, since, today))
                for score, found in ((observations.pain, scores.pain), (observations.function, scores.function))]
    shown += [reading for _, reading in baseline if reading]
    missing = [label for label, reading in baseline if reading is None]
    if missing:
        findings.append(finding(knowledge, "esi-baseline-undocumented", scores=observations.joiner.join(missing),
                                days=rule.baseline_days))
    if same_region:
        last = same_region[-1]
        found = responses(knowledge, (scores.pain, scores.function), last.day, today)
        if found is not None:
            findings.append(_response_finding(knowledge, found, last, region))
            shown += [reading for response in found for reading in (response.before, response.after)]
    return findings, shown


def _response_finding(knowledge: Knowledge, found: Sequence[Response], last: PriorInjection, region: str
                      ) -> Finding:
    if not found:
        return finding(knowledge, "esi-response-undocumented", [last.reference], region=region,
                       date=last.day.isoformat())
    threshold = knowledge.config.rules.esi.response.min_percent
    best = max(found, key=lambda response: response.percent)
    evidence = [last.reference, *(r.reference for response in found for r in (response.before, response.after))]
    facts = {"region": region, "date": last.day.isoformat(), "measure": best.before.label,
             "before": best.before.shown, "after": best.after.shown}
    if best.percent >= threshold:
        return finding(knowledge, "esi-response-documented", evidence, **facts)
    shown = found[0]  # pain first, when it is documented
    return finding(knowledge, "esi-poor-response", evidence, **{
        **facts, "measure": shown.before.label, "before": shown.before.shown, "after": shown.after.shown,
        "percent": number(threshold)})


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
