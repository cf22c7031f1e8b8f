"""Clinician report cards: for each clinician, their orders of the period, adherence per measure component
beside their previous period of the same length, the site's median and the target, the trend by month, their
overrides by reason (with the share whose reason the guideline itself supports, cards/pathway.yaml) and every order
that missed, its patient by record id where the audit keeps plain ids and the reader may see them, else by hash.
The numbers are the Measure's: the same rows, the same tallies (scoring.Tally) as every other report."""
from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..pathway import Knowledge
from .filters import Filters
from .measure import MeasureDefinition
from .orders import UNKNOWN, OrderRow, Orders, ReportPeriod
from .scoring import ClinicianLabels, Tally, tally_of

COMMENTS_SHOWN = 4
MEDIAN_CLINICIANS = 2
"""A site median is shown only over at least this many clinicians (one clinician's "median" is their own rate)."""


@dataclass(frozen=True)
class ComponentLine:
    id: str
    title: str
    numerator: int
    scored: int
    rate: float | None
    site_median: float | None
    previous: float | None = None
    """The same clinician's (or the site's) rate in the period of the same length just before."""


@dataclass(frozen=True)
class MonthLine:
    month: str
    orders: int
    rate: float | None


@dataclass(frozen=True)
class ReasonLine:
    display: str
    count: int
    supported: bool | None
    """None: free text or no reason, which no guideline can be said to support."""


@dataclass(frozen=True)
class Missed:
    patient: str
    day: str
    kind: str
    region: str
    components: tuple[str, ...]
    """The components it did not meet, besides the overall one, by their titles."""


@dataclass(frozen=True)
class ReportCard:
    clinician: str
    label: str
    slug: str
    orders: int
    by_kind: Mapping[str, int]
    components: tuple[ComponentLine, ...]
    months: tuple[MonthLine, ...]
    overrides: int
    reasons: tuple[ReasonLine, ...]
    supported_share: float | None
    comments: tuple[str, ...]
    missed: tuple[Missed, ...]
    missed_total: int


@dataclass(frozen=True)
class ReportCards:
    period: Mapping[str, str | None]
    target: float
    cards: tuple[ReportCard, ...]
    site: tuple[ComponentLine, ...]
    """The site's own rates (every clinician's orders together), with the clinicians' median."""
    median_shown: bool
    """False: too few clinicians for a site median (the cards say so)."""
    previous_period: Mapping[str, str | None]
    """The period of the same length just before (None: the period has no start or end to measure it by)."""
    patients_plain: bool
    """True: patients appear by their record id (the audit keeps plain ids and the reader may see them)."""


RESERVED_SLUGS = frozenset({"index", "report-cards"})
"""The file names the report cards' folder keeps for itself (index.html, report-cards.pdf): a clinician named so
gets `index-2.html`, never the index's place."""


def slug_of(label: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:60] or "clinician"
    slug, n = base, 1
    while slug in used:
        n += 1
        slug = f"{base}-{n}"
    used.add(slug)
    return slug


def _lines(tally: Tally, measure: MeasureDefinition, medians: Mapping[str, float | None],
           previous: Tally | None) -> tuple[ComponentLine, ...]:
    return tuple(ComponentLine(c.id, c.title, tally.components[c.id].numerator,
                               tally.components[c.id].denominator - tally.components[c.id].excluded,
                               tally.components[c.id].rate, medians.get(c.id),
                               previous.components[c.id].rate if previous else None) for c in measure.components)


def _previous(orders: Orders, period: ReportPeriod, measure: MeasureDefinition, filters: Filters
              ) -> tuple[ReportPeriod | None, Tally, dict[str, Tally]]:
    """The period of the same length just before `period` (when it has both ends), and its tallies: the site's and
    each clinician's."""
    site, by_clinician = Tally(measure), dict[str, Tally]()
    if period.since is None or period.until is None:
        return None, site, by_clinician
    before = ReportPeriod(period.since - (period.until - period.since) - timedelta(days=1),
                          period.since - timedelta(days=1))
    for row in orders.rows(before, measure):
        if filters.admits(row):
            tally_of(by_clinician, row.stratum("clinician"), measure).add(row)
            site.add(row)
    return before, site, by_clinician


def _reasons(rows: Iterable[OrderRow], knowledge: Knowledge) -> tuple[list[ReasonLine], float | None, list[str]]:
    reasons = {r.code: r for r in knowledge.config.card.override_reasons.reasons}
    counts: dict[str | None, int] = {}
    comments = []
    for row in rows:
        if row.outcome == "overridden":
            counts[row.override_code] = counts.get(row.override_code, 0) + 1
            if row.override_comment:
                comments.append(row.override_comment)
    lines = [ReasonLine(reasons[code].display if code in reasons else (code or "No reason given"), count,
                        reasons[code].guideline_supported if code in reasons else None)
             for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0] or ""))]
    total = sum(counts.values())
    supported = sum(line.count for line in lines if line.supported)
    return lines, (round(supported / total, 4) if total else None), comments


def report_cards(orders: Orders, period: ReportPeriod, measure: MeasureDefinition, knowledge: Knowledge,
                 target: float, patient_shown: Callable[[str], str], filters: Filters = Filters(),
                 patients_plain: bool = False) -> ReportCards:
    """One card per clinician with orders in the period (filtered as every report is); `patient_shown` gives a
    patient as the reader may see it (`patients_plain`: the record id, else the keyed hash)."""
    labels = ClinicianLabels()
    by_clinician: dict[str, list[OrderRow]] = {}
    for row in orders.rows(period, measure):
        if filters.admits(row):
            labels.note(row)
            by_clinician.setdefault(row.stratum("clinician"), []).append(row)
    site, tallies = Tally(measure), {}
    days = sorted(row.received_at.date() for rows in by_clinician.values() for row in rows)
    shown = {"since": (period.since or (days[0] if days else None)), "until": (period.until or (days[-1] if days else None))}
    for clinician, rows in by_clinician.items():
        tallies[clinician] = Tally(measure)
        for row in rows:
            tallies[clinician].add(row)
            site.add(row)
    medians = {c.id: _median([t.components[c.id].rate for t in tallies.values()]) for c in measure.components}
    shown_period = ReportPeriod(shown["since"], shown["until"])
    before, site_before, clinicians_before = _previous(orders, shown_period, measure, filters)
    titles = {c.id: c.title for c in measure.components}
    overall = measure.components[0].id
    cards: list[ReportCard] = []
    used: set[str] = set(RESERVED_SLUGS)
    for clinician in sorted(by_clinician, key=lambda key: labels.of(key).lower()):
        rows = by_clinician[clinician]
        months: dict[str, Tally] = {}
        for row in rows:
            tally_of(months, row.stratum("month"), measure).add(row)
        reasons, share, comments = _reasons(rows, knowledge)
        missed = [Missed(patient_shown(row.patient) if row.patient else UNKNOWN, row.received_at.date().isoformat(),
                         row.kind, row.region,
                         tuple(titles.get(cid, cid) for cid, outcome in row.outcomes.items()
                               if outcome == "not-met" and cid != overall))
                  for row in sorted(rows, key=lambda row: row.received_at) if row.outcomes.get(overall) == "not-met"]
        label = labels.of(clinician)
        cards.append(ReportCard(
            clinician=clinician, label=label, slug=slug_of(label, used), orders=len(rows),
            by_kind={kind: sum(row.kind == kind for row in rows) for kind in ("esi", "regenerative", "surgery")},
            components=_lines(tallies[clinician], measure, medians, clinicians_before.get(clinician)),
            months=tuple(MonthLine(month, t.orders, t.components[overall].rate) for month, t in sorted(months.items())),
            overrides=sum(line.count for line in reasons), reasons=tuple(reasons), supported_share=share,
            comments=tuple(comment[:160] for comment in comments[:COMMENTS_SHOWN]), missed=tuple(missed),
            missed_total=len(missed)))
    return ReportCards(shown_period.as_dict(), target, tuple(cards),
                       _lines(site, measure, medians, site_before if before else None), len(tallies) >= MEDIAN_CLINICIANS,
                       (before or ReportPeriod()).as_dict(), patients_plain)


def _median(rates: list[float | None]) -> float | None:
    scored = [rate for rate in rates if rate is not None]
    return round(statistics.median(scored), 4) if len(scored) >= MEDIAN_CLINICIANS else None


def as_dict(found: ReportCards) -> dict[str, Any]:
    """For the API and the tests: every number of every card."""
    return {"period": found.period, "target": found.target, "previousPeriod": found.previous_period,
            "patientsPlain": found.patients_plain,
            "cards": [{"clinician": card.clinician, "label": card.label, "orders": card.orders, "byKind": card.by_kind,
                       "components": {line.id: {"numerator": line.numerator, "scored": line.scored, "rate": line.rate,
                                                "siteMedian": line.site_median, "previous": line.previous}
                                      for line in card.components},
                       "months": [{"month": m.month, "orders": m.orders, "rate": m.rate} for m in card.months],
                       "overrides": card.overrides, "supportedShare": card.supported_share,
                       "reasons": [{"display": r.display, "count": r.count, "supported": r.supported}
                                   for r in card.reasons],
                       "missed": [m.__dict__ for m in card.missed], "missedTotal": card.missed_total}
                      for card in found.cards]}
