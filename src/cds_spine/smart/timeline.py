"""What the pathway timeline draws, from the same assessment the cards are rendered from: the order's
Assessment when the card named a draft order (appContext), else the patient-view summary. Nothing here
decides anything: days, thresholds, counted and not counted items, findings and standings are the pathway's,
in the words of cards/pathway.yaml; this module only places them on a time axis."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..app_context import AppContext
from ..pathway import Assessment, Knowledge, PatientRecord, PatientSummary, assess
from ..pathway.assessment import DiagnosisOnRecord, order_segments, today_of
from ..pathway.evidence import ConservativeHistory
from ..pathway.observation_rules import ScoresOnRecord
from ..pathway.orders import classify
from ..pathway.phrases import finding_summary, standings
from ..pathway.record import Code, DraftOrder
from ..pathway.standing import RegionInjections
from ..pathway.wording import WORDING


@dataclass(frozen=True)
class Span:
    """Where a day or a period sits on the axis, in percent of its width."""

    left: float
    width: float


@dataclass(frozen=True)
class Row:
    label: str
    description: str
    start: date
    end: date
    counted: bool
    status: str
    """"counted", or "not counted: <reason>"."""
    span: Span


@dataclass(frozen=True)
class Lane:
    """One line of the chart: a modality or medication (every item of it), or one kind of item not counted."""

    label: str
    counted: bool
    status: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Threshold:
    label: str
    day: date
    left: float
    when: str
    """"reached on <day>", "would be reached on <day>, if the therapy goes on" (a day after today), or "not
    reached" (the longest episode ended before it)."""

    @property
    def label_before(self) -> bool:
        """Near the right edge the label goes left of its line, so that it stays inside the chart."""
        return self.left > 70


@dataclass(frozen=True)
class Mark:
    label: str
    day: date
    left: float
    highlighted: bool = False


@dataclass(frozen=True)
class Diagnosis:
    description: str
    regions: str
    red_flag: bool
    highlighted: bool


@dataclass(frozen=True)
class Injections:
    region: str
    line: str
    marks: tuple[Mark, ...]
    highlighted: bool


@dataclass(frozen=True)
class Score:
    label: str
    value: str
    day: date
    left: float


@dataclass(frozen=True)
class Timeline:
    title: str
    first: date
    today: date
    heading: str
    """The order's heading, or the standing heading (patient-view)."""
    statements: tuple[str, ...]
    """The card's summary and lines: the order's findings, or where each step stands."""
    diagnoses: tuple[Diagnosis, ...]
    therapy_heading: str
    rows: tuple[Row, ...]
    """Every item, for the table."""
    lanes: tuple[Lane, ...]
    """The items by modality, for the chart."""
    today_left: float
    days: int
    episode: str
    episode_span: Span | None
    thresholds: tuple[Threshold, ...]
    injections: tuple[Injections, ...]
    scores: tuple[Score, ...]
    months: tuple[Mark, ...]


class _Axis:
    def __init__(self, first: date, last: date) -> None:
        self.first = first
        self.days = max(1, (last - first).days + 1)

    def at(self, day: date) -> float:
        return round(min(100.0, max(0.0, (day - self.first).days / self.days * 100)), 2)

    def span(self, start: date, end: date) -> Span:
        left = self.at(start)
        return Span(left, round(max(0.6, self.at(end + timedelta(days=1)) - left), 2))


def order_assessment(context: AppContext | None, record: PatientRecord, knowledge: Knowledge, now: datetime
                     ) -> Assessment | None:
    """The assessment of the draft order the card was about, as the card's: the same order code, record and
    day; None when the card named no order in the pathway."""
    if context is None or context.code is None:
        return None
    order = classify(DraftOrder(context.draftOrder, (Code(context.code.system, context.code.code),), None, "draft"),
                     knowledge, placed=context.region)
    return assess([order], record, knowledge, now)[0] if order else None


def _regions(knowledge: Knowledge, diagnosis: DiagnosisOnRecord) -> str:
    """The diagnosis's spinal segments, each named as its region is."""
    names = (knowledge.config.regions.get(segment, segment) for segment in sorted(diagnosis.segments))
    return ", ".join(names) or knowledge.config.timeline.no_region


def _rows(knowledge: Knowledge, history: ConservativeHistory, axis: _Axis) -> list[Row]:
    wording = knowledge.config.timeline
    rows = [Row(item.label, item.description, item.start, item.end, True, wording.counted,
                axis.span(item.start, item.end)) for item in history.evidence]
    rows += [Row(item.description, item.description, item.start, item.end, False,
                 WORDING.format(wording.not_counted, reason=item.reason), axis.span(item.start, item.end))
             for item in history.not_counted]
    return sorted(rows, key=lambda row: (row.start, not row.counted, row.label))


def _lanes(rows: list[Row]) -> list[Lane]:
    lanes: dict[tuple[str, bool, str], list[Span]] = {}
    for row in rows:
        lanes.setdefault((row.label, row.counted, row.status), []).append(row.span)
    return [Lane(label, counted, status, tuple(spans)) for (label, counted, status), spans in lanes.items()]


def build(summary: PatientSummary, order: Assessment | None, scores: ScoresOnRecord, knowledge: Knowledge,
          now: datetime) -> Timeline:
    config = knowledge.config
    wording = config.timeline
    today = today_of(now)
    first = today - timedelta(days=config.lookback_days)
    history = order.history if order else summary.history
    longest = history.longest
    required_days = [order.required_days] if order else [summary.esi_required, summary.surgery_required]
    # The axis runs to the last threshold when therapy going on would reach it after today.
    last = max([today, *(longest.start + timedelta(days=days - 1) for days in required_days if longest)])
    axis = _Axis(first, last)
    region = order.order.region if order else None
    if order:
        heading = WORDING.format(wording.order_heading, order=order.order_label)
        lead = order.lead
        statements = [finding_summary(knowledge, f.code, f.facts) for f in order.findings]
        if lead is None:
            statements.insert(0, finding_summary(knowledge, "criteria-met", {
                "days": history.days, "therapy": history.phrase(knowledge), "order": order.order_label}))
        thresholds = [(order.order_label, order.required_days)]
    else:
        heading = wording.standing_heading
        view = config.patient_view
        statements = [WORDING.format(view.standing_line, name=name, criteria=criteria) for name, criteria in
                      zip((view.esi_name, view.regenerative_name, view.surgery_name), standings(knowledge, summary),
                          strict=True)]
        thresholds = [(view.esi_name, summary.esi_required), (view.surgery_name, summary.surgery_required)]
    episode = WORDING.format(wording.episode, days=history.days, start=longest.start, end=longest.end) \
        if longest else wording.no_episode
    lines = []
    if longest:
        for name, required in thresholds:
            day = longest.start + timedelta(days=required - 1)
            template = wording.threshold_reached if longest.days >= required else \
                wording.threshold_ahead if day > today else wording.threshold_missed
            when = WORDING.format(template, day=day.isoformat(), end=longest.end.isoformat())
            lines.append(Threshold(WORDING.format(wording.threshold, name=name, required=required), day, axis.at(day),
                                   when))
    segments = order_segments(knowledge, region) if region else frozenset()
    rows = _rows(knowledge, history, axis)
    return Timeline(
        title=wording.title, first=first, today=today, heading=heading, statements=tuple(statements),
        diagnoses=tuple(Diagnosis(d.description, _regions(knowledge, d), d.is_red_flag,
                                  bool(segments and d.fits(segments))) for d in summary.diagnoses),
        therapy_heading=WORDING.format(wording.therapy_heading, lookback_months=round(config.lookback_days / 30.4)),
        rows=tuple(rows), lanes=tuple(_lanes(rows)), today_left=axis.at(today), days=history.days, episode=episode,
        episode_span=axis.span(longest.start, longest.end) if longest else None, thresholds=tuple(lines),
        injections=tuple(_injections(knowledge, summary.injections, region, axis)),
        scores=tuple(Score(s.label, s.shown, s.day, axis.at(s.day)) for s in scores.between(first, today)),
        months=tuple(Mark(day.strftime("%b %y"), day, axis.at(day)) for day in _month_starts(first, last)),
    )


def _injections(knowledge: Knowledge, regions: tuple[RegionInjections, ...], highlighted: str | None, axis: _Axis
                ) -> list[Injections]:
    rule = knowledge.config.rules.esi
    found = []
    for region in regions:
        name = knowledge.config.regions.get(region.region, "")
        line = WORDING.format(knowledge.config.patient_view.injections_line, region=name, count=len(region.injections),
                              dates=", ".join(i.day.isoformat() for i in region.injections),
                              limit=rule.max_sessions_per_region, min_days=rule.min_days_between)
        marks = tuple(Mark(f"{name} ESI", i.day, axis.at(i.day), region.region == highlighted)
                      for i in region.injections)
        found.append(Injections(name, " ".join(line.split()), marks, region.region == highlighted))
    return found


def _month_starts(first: date, last: date) -> list[date]:
    day = date(first.year, first.month, 1)
    found = []
    while day <= last:
        if day >= first:
            found.append(day)
        day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return found

