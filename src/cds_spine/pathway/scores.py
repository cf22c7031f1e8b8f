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
from .rule_parameters import Score


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


@dataclass(frozen=True)
class Response:
    """A score before the last ESI in a region and after it."""

    before: Reading
    after: Reading

    @property
    def percent(self) -> float:
        """How much better (less pain, less disability), in percent of the score before."""
        if self.before.value <= 0:
            return 0.0
        return (self.before.value - self.after.value) / self.before.value * 100


def responses(knowledge: Knowledge, scores: Sequence[Sequence[Reading]], injected: date, today: date
              ) -> list[Response] | None:
    """The response to an ESI on each score documented before and after it; None while the window after it
    has not begun (too early to judge)."""
    rule = knowledge.config.rules.esi.response
    after_first = injected + timedelta(days=rule.after_min_days)
    if today < after_first:
        return None
    after_last = min(injected + timedelta(days=rule.after_max_days), today)
    found = []
    for readings_of_score in scores:
        before = latest(readings_of_score, injected - timedelta(days=rule.before_days), injected)
        after = latest(readings_of_score, after_first, after_last)
        if before and after:
            found.append(Response(before, after))
    return found


def smokes(record: PatientRecord, knowledge: Knowledge, today: date) -> tuple[date, str] | None:
    """The day and reference of the latest smoking status or cotinine of the window, when it says the patient
    uses nicotine (a current smoker, a positive cotinine)."""
    config = knowledge.config
    smoking = config.observations.smoking
    first = today - timedelta(days=config.rules.surgery.readiness.smoking_status_days)
    statuses = sorted((observation.day, observation.reference, bool(knowledge.find(measurement.answer, meaning)))
                      for valueset, meaning in ((smoking.valueset, smoking.current), (smoking.cotinine, smoking.positive))
                      for observation, measurement in _measurements(record, knowledge, valueset)
                      if observation.day is not None and first <= observation.day <= today and measurement.answer)
    if not statuses:
        return None
    day, reference, current = statuses[-1]
    return (day, reference) if current else None
