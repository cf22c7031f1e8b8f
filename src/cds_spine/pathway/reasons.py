"""What a record entry treats: a spine condition (with its region), another condition, or not known.

The record says it in the entry's own reason (reasonCode, or the Condition a reasonReference points
to) or body site. An entry with neither is taken to treat the condition it follows: one that began in
the few days before it (cards/pathway.yaml `reasons.attribution_days`) and was still active, when that
is a spine diagnosis or an acute injury or illness (`reasons.attribution_valueset`). Only the Conditions some value set holds are
read, so a reference that does not resolve is to another condition. Real records leave
the reason out of most entries: physical therapy in a skilled-nursing stay after a wrist fracture, an
analgesic on the day of an ankle sprain.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from .knowledge import CONDITION_DISPLAY_LIMIT, Knowledge
from .record import Code, ConditionEntry, PatientRecord, Reason
from .timing import DISCARDED_VERIFICATION


def describe(codes: Sequence[Code], text: str | None) -> str:
    return text or next((code.display for code in codes if code.display), None) or (
        codes[0].code if codes else "unnamed entry")


def shorten(text: str, limit: int = CONDITION_DISPLAY_LIMIT) -> str:
    """A name short enough for a card's summary."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Indication:
    spine: bool | None
    """True: a spine condition; False: another condition; None: the record does not say."""
    segments: frozenset[str] = frozenset()
    """The spinal segments it is for; empty: any (a spine condition without a region, or not known)."""
    condition: str | None = None
    """The name of the condition it is for, when the record names one."""
    explicit: bool = False
    """Read from the entry's own reason or body site, not from what it followed."""
    pain: bool = False
    """Its reason is pain that names no site ("Chronic pain"): not known to be the spine, but pain."""

    def fits(self, segments: frozenset[str]) -> bool:
        """Does it count toward an order for these segments? Not when both have a region and they differ."""
        return not (self.segments and segments and not self.segments & segments)


NOT_KNOWN = Indication(None)


class Indications:
    """Reads indications from one patient's record."""

    def __init__(self, record: PatientRecord, knowledge: Knowledge) -> None:
        self.record = record
        self.knowledge = knowledge
        reasons = knowledge.config.reasons
        self.attribution_days = timedelta(days=reasons.attribution_days)
        self.candidates = sorted((c for c in record.conditions if c.onset and c.verification_status
                                  not in DISCARDED_VERIFICATION and self._spine_or_acute(c)), key=lambda c: c.onset or date.min)

    def _spine_or_acute(self, condition: ConditionEntry) -> bool:
        return bool(self.knowledge.spine_diagnosis(condition.codes) or self.knowledge.find(
            condition.codes, self.knowledge.config.reasons.attribution_valueset))

    def of(self, reasons: Iterable[Reason], body_sites: Iterable[Code], start: date | None) -> Indication:
        explicit = self.stated(reasons, body_sites)
        if explicit.spine is not None or start is None:
            return explicit
        followed = self.followed(start)
        return explicit if explicit.pain and not followed.spine else followed  # pain stated: pain, unless the spine

    def stated(self, reasons: Iterable[Reason], body_sites: Iterable[Code]) -> Indication:
        """From the entry's own reasons and body sites."""
        spine: list[frozenset[str]] = []
        spine_condition = None
        other = None
        pain = False
        nonspecific = self.knowledge.config.reasons.nonspecific_valueset
        for reason in reasons:
            condition = self.record.condition(reason.condition_id)
            codes = reason.codes or (condition.codes if condition else ())
            if self.knowledge.find(codes, nonspecific):
                pain = True
                continue
            found = self.knowledge.spine_diagnosis(codes)
            if found:
                spine.append(self.knowledge.segments(found))
                spine_condition = spine_condition or describe(codes, reason.text or (
                    condition.text if condition else None))
            elif other is None and (codes or reason.condition_id):
                # A reference the record does not resolve points to a condition no value set holds (every
                # spine diagnosis is kept): another condition.
                other = describe(codes, reason.text or (condition.text if condition else None)) if codes else (
                    reason.text or self.knowledge.config.reasons.unnamed_condition)
        site_valueset = self.knowledge.config.reasons.body_site_valueset
        spine += [self.knowledge.segments(found) for site in body_sites
                  if (found := self.knowledge.find((site,), site_valueset))]
        if spine:
            return Indication(True, union_segments(spine), condition=spine_condition, explicit=True)
        if other:
            return Indication(False, condition=other, explicit=True)
        return Indication(None, pain=True, explicit=True) if pain else NOT_KNOWN

    def followed(self, start: date) -> Indication:
        """From the spine diagnoses, injuries and illnesses that began shortly before `start`."""
        recent = [c for c in self.candidates if c.onset and start - self.attribution_days <= c.onset <= start
                  and (c.abatement is None or c.abatement >= start)]
        spinal = [(c, found) for c in recent if (found := self.knowledge.spine_diagnosis(c.codes))]
        if spinal:
            latest = spinal[-1][0]
            return Indication(True, union_segments(self.knowledge.segments(found) for _, found in spinal),
                              condition=describe(latest.codes, latest.text))
        if recent:
            return Indication(False, condition=describe(recent[-1].codes, recent[-1].text))
        return NOT_KNOWN


def union_segments(segments: Iterable[frozenset[str]]) -> frozenset[str]:
    """The segments of several spine reasons; one without a region makes it any region."""
    segments = list(segments)
    return frozenset() if any(not s for s in segments) else frozenset().union(*segments)
