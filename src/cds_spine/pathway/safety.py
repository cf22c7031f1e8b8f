"""What a proceduralist checks before a needle. A red flag, or a recent systemic infection, stops an injection
(cards/pathway.yaml `diagnoses.red_flags` and `diagnoses.systemic_infection`): a red flag never makes an injection
appropriate, so the card leads with it and asks for urgent evaluation, never for physical therapy first. An
anticoagulant or antiplatelet on record is a warning with the guideline's hold interval (`anticoagulation`)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from .findings import Finding, finding
from .knowledge import RED_FLAG_NAME_LIMIT, Knowledge
from .orders import ClassifiedOrder
from .reasons import describe, shorten
from .record import ConditionEntry, PatientRecord
from .timing import DISCARDED_VERIFICATION, MEDICATION_STATUSES_TAKEN, is_active, medication_days

INJECTIONS = frozenset({"esi", "regenerative"})
"""The order categories that put a needle in the spine."""


@dataclass(frozen=True)
class ConditionOnRecord:
    reference: str
    description: str
    day: date


def is_red(condition: ConditionEntry, acute_days: int | None, today: date) -> bool:
    """Active, and acute: a red flag older than `acute_days` is history. Undated, it stays red (the safe reading)."""
    if not is_active(condition, today):
        return False
    return acute_days is None or condition.onset is None or (today - condition.onset).days <= acute_days


def recent_infections(record: PatientRecord, knowledge: Knowledge, today: date) -> tuple[ConditionOnRecord, ...]:
    """Sepsis or bacteraemia that began in the last `within_days`, resolved or not: newest first."""
    rule = knowledge.config.diagnoses.systemic_infection
    found = [ConditionOnRecord(c.reference, describe(c.codes, c.text), c.onset) for c in record.conditions
             if c.onset is not None and 0 <= (today - c.onset).days <= rule.within_days
             and c.verification_status not in DISCARDED_VERIFICATION and knowledge.find(c.codes, rule.valueset)]
    return tuple(sorted(found, key=lambda c: c.day, reverse=True))


def stopping_findings(knowledge: Knowledge, order_label: str, red_flags: Sequence[tuple[str, str]],
                      infections: Sequence[ConditionOnRecord]) -> list[Finding]:
    """At an injection order: the first red flag (reference, description) and the latest systemic infection."""
    findings = []
    if red_flags:
        reference, description = red_flags[0]
        findings.append(finding(knowledge, "red-flag-injection", [reference],
                                condition=shorten(description, RED_FLAG_NAME_LIMIT),
                                order=order_label))
    if infections:
        infection = infections[0]
        findings.append(finding(knowledge, "injection-contraindicated", [infection.reference],
                                condition=shorten(infection.description), date=infection.day.isoformat(),
                                order=order_label))
    return findings


def anticoagulant_findings(knowledge: Knowledge, record: PatientRecord, order: ClassifiedOrder, order_label: str,
                           today: date) -> list[Finding]:
    """Each anticoagulant or antiplatelet taken within its washout before today (the latest order of each), else a
    Condition of long-term use: a warning with the hold interval for the injection's bleeding risk."""
    rule = knowledge.config.anticoagulation
    risk = rule.risk(order.approach, order.region)
    drugs = {drug.label: drug for drug in rule.drugs}
    latest: dict[str, tuple[date, str]] = {}
    for entry in record.medications:
        if entry.status not in MEDICATION_STATUSES_TAKEN:
            continue
        texts = " ".join(filter(None, [entry.text, *(code.display for code in entry.codes)]))
        label = knowledge.anticoagulant_names.owner(texts) if texts else None
        days = medication_days(entry, today, knowledge) if label else None
        if label and days and days[0] <= today and (today - days[1]).days <= drugs[label].washout_days:
            if label not in latest or days[1] > latest[label][0]:
                latest[label] = (days[1], entry.reference)
    findings = [finding(knowledge, "anticoagulant", [reference], drug=label, hold=drugs[label].hold[risk],
                        order=order_label, risk=rule.risk_labels[risk])
                for label, (_, reference) in sorted(latest.items())]
    if not findings:
        long_term = next((c for c in record.conditions if is_active(c, today)
                          and knowledge.find(c.codes, rule.long_term_use_valueset)), None)
        if long_term:
            findings.append(finding(knowledge, "anticoagulant-long-term", [long_term.reference],
                                    condition=shorten(describe(long_term.codes, long_term.text)), order=order_label))
    return findings
