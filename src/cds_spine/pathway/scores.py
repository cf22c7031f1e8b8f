"""Scores and results from Observations: the baseline before an ESI, the response to the last one, and the
readiness for elective fusion (nicotine-free, HbA1c under the threshold). Every code set, window and threshold
is in cards/pathway.yaml.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from .knowledge import Knowledge
from .record import Measurement, ObservationEntry, PatientRecord
from .rule_parameters import PatientScore, Score


@dataclass(frozen=True)
class Reading:
    """One value of one score on one day."""

    label: str
    value: float
    unit: str
    day: date
    reference: str

    @property
    def shown(self) -> str:
        return f"{number(self.value)}{self.unit}"


def number(value: float) -> str:
    """7.0 -> "7", 7.25 -> "7.3"."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _measurements(record: PatientRecord, knowledge: Knowledge, valueset: str
                  ) -> Iterator[tuple[ObservationEntry, Measurement]]:
    """The dated measurements of a value set, from Observations in a status that is read."""
    unread = knowledge.config.observations.unread_statuses
    for observation in record.observations:
        if observation.day is None or observation.status in unread:
            continue
        for measurement in observation.measurements:
            if knowledge.find(measurement.codes, valueset):
                yield observation, measurement


def readings(record: PatientRecord, knowledge: Knowledge, score: Score) -> list[Reading]:
    """A score's numeric values, oldest first (one a day and reference, whatever duplicates the record holds)."""
    found = {(observation.day, observation.reference, measurement.value)
             for observation, measurement in _measurements(record, knowledge, score.valueset)
             if measurement.value is not None}
    return [Reading(score.label, value, score.unit, day, reference)
            for day, reference, value in sorted(found) if day is not None and value is not None]


def latest(found: Sequence[Reading], first: date, last: date) -> Reading | None:
    """The latest reading from `first` to `last`, inclusive."""
    within = [reading for reading in found if first <= reading.day <= last]
    return within[-1] if within else None


def best(found: Sequence[Reading], first: date, last: date, better: str) -> Reading | None:
    """The best reading from `first` to `last`, inclusive (the latest of equals: how long the relief lasted)."""
    within = [reading for reading in found if first <= reading.day <= last]
    sign = -1 if better == "lower" else 1
    return max(within, key=lambda reading: (sign * reading.value, reading.day)) if within else None


@dataclass(frozen=True)
class Response:
    """A score before the last ESI in a region and after it."""

    score: PatientScore
    before: Reading
    after: Reading

    @property
    def improvement(self) -> float:
        """How much better, in the score's points (less pain or disability, or more function)."""
        change = self.after.value - self.before.value
        return change if self.score.better == "higher" else -change

    @property
    def percent(self) -> float:
        """How much better in percent of the score before (scales where lower is better)."""
        return self.improvement / self.before.value * 100 if self.before.value > 0 else 0.0

    @property
    def rated(self) -> bool:
        """A 0-10 scale or a disability index, on which the LCD's percent is judged (not a T-score)."""
        return self.score.min_points is None

    def responded(self, min_percent: float) -> bool:
        """At least the score's `min_points` better, or `min_percent` better when it has none."""
        if self.score.min_points is not None:
            return self.improvement >= self.score.min_points
        return self.percent >= min_percent


def responses(knowledge: Knowledge, scores: Sequence[tuple[PatientScore, Sequence[Reading]]], injected: date,
              today: date) -> list[Response] | None:
    """The response to an ESI on each score documented before and after it; None while the window after it
    has not begun (too early to judge)."""
    rule = knowledge.config.rules.esi.response
    after_first = injected + timedelta(days=rule.after_min_days)
    if today < after_first:
        return None
    after_last = min(injected + timedelta(days=rule.after_max_days), today)
    found = []
    for score, readings_of_score in scores:
        before = latest(readings_of_score, injected - timedelta(days=rule.before_days), injected)
        after = best(readings_of_score, after_first, after_last, score.better)
        if before and after:
            found.append(Response(score, before, after))
    return found


def smokes(record: PatientRecord, knowledge: Knowledge, today: date) -> tuple[date, str] | None:
    """The day and reference of the latest smoking status or cotinine of the window, when it says the patient
    uses nicotine (a current smoker, a positive cotinine, a cotinine level over the limit)."""
    config = knowledge.config
    smoking = config.observations.smoking
    first = today - timedelta(days=config.rules.surgery.readiness.smoking_status_days)
    statuses = sorted((observation.day, observation.reference, uses)
                      for valueset in (smoking.valueset, smoking.cotinine, smoking.cotinine_level)
                      for observation, measurement in _measurements(record, knowledge, valueset)
                      if observation.day is not None and first <= observation.day <= today
                      for uses in [_uses_nicotine(knowledge, valueset, measurement)] if uses is not None)
    if not statuses:
        return None
    day, reference, current = statuses[-1]
    return (day, reference) if current else None


def _uses_nicotine(knowledge: Knowledge, valueset: str, measurement: Measurement) -> bool | None:
    """What one smoking status or cotinine result says; None when it says nothing that can be judged (no
    answer, or a level with no value or in another unit)."""
    smoking = knowledge.config.observations.smoking
    if valueset == smoking.cotinine_level:
        if measurement.value is None or not set(measurement.units) & set(smoking.level_units):
            return None
        return measurement.value > knowledge.config.rules.surgery.readiness.max_cotinine
    if not measurement.answer:
        return None
    meaning = smoking.current if valueset == smoking.valueset else smoking.positive
    return bool(knowledge.find(measurement.answer, meaning))
