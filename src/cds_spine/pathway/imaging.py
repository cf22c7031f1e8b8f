"""Spine imaging on record, and what its absence means at an order (cards/pathway.yaml `imaging`, `image_first`).

Cancer history, unexplained weight loss, recent fever, immunosuppression or injection drug use call for MRI or CT
of the spine before an injection or spine surgery (NICE NG59, ACP 2017, NASS): without imaging of the order's region
in the window they are a warning. Without them, no imaging in the window is a documentation finding: the payers'
criteria ask for concordant imaging (eviCore: 24 months before an ESI, 6 before surgery)."""
from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from .findings import Finding, finding
from .knowledge import Knowledge
from .orders import ClassifiedOrder
from .reasons import describe, shorten
from .record import Code, ConditionEntry, PatientRecord
from .rule_parameters import ImageFirstFlag
from .timing import (
    DISCARDED_VERIFICATION,
    MEDICATION_STATUSES_TAKEN,
    PROCEDURE_STATUSES_DONE,
    is_active,
    medication_days,
    procedure_days,
)
from .wording import WORDING

REPORT_STATUSES_DONE = frozenset({"partial", "preliminary", "final", "amended", "corrected", "appended"})
"""A report in one of these statuses is of a study that was done."""
STUDY_STATUSES_DONE = frozenset({"available", None})
"""An ImagingStudy whose images are available (STU3 has no status: a study on record was done)."""
TEXT_NAME_LIMIT = 22
"""A diagnosis read from its text is named shorter, to leave room for saying so."""


@dataclass(frozen=True)
class ImageFirstOnRecord:
    reference: str
    description: str
    flag: str
    from_text: bool = False


def _flag_of(condition: ConditionEntry, knowledge: Knowledge) -> tuple[ImageFirstFlag, bool] | None:
    """The flag a diagnosis's codes put it in, else (when none of its codes is in any value set) its text."""
    flags = knowledge.config.image_first.flags
    coded = next((flag for flag in flags if knowledge.find(condition.codes, flag.valueset)), None)
    if coded:
        return coded, False
    if knowledge.knows_any(condition.codes):
        return None
    text = " ".join(filter(None, [condition.text, *(code.display for code in condition.codes)]))
    flag_id = knowledge.image_first_by_text(text) if text else None
    return (next(flag for flag in flags if flag.id == flag_id), True) if flag_id else None


def _counts(condition: ConditionEntry, flag: ImageFirstFlag, today: date) -> bool:
    if condition.verification_status in DISCARDED_VERIFICATION:
        return False
    if condition.onset is not None and condition.onset > today:
        return False
    if flag.within_days is not None:
        return condition.onset is not None and (today - condition.onset).days <= flag.within_days
    return flag.any_status or is_active(condition, today)


def image_first_on_record(record: PatientRecord, knowledge: Knowledge, today: date) -> tuple[ImageFirstOnRecord, ...]:
    """Every flag on record: diagnoses, then immunosuppressants taken lately."""
    found = []
    for condition in record.conditions:
        flagged = _flag_of(condition, knowledge)
        if flagged and _counts(condition, flagged[0], today):
            found.append(ImageFirstOnRecord(condition.reference, describe(condition.codes, condition.text),
                                            flagged[0].id, flagged[1]))
    immunosuppressants = knowledge.config.image_first.immunosuppressants
    for entry in record.medications:
        texts = " ".join(filter(None, [entry.text, *(code.display for code in entry.codes)]))
        if entry.status in MEDICATION_STATUSES_TAKEN and texts and knowledge.immunosuppressant_names.owner(texts):
            days = medication_days(entry, today, knowledge)
            if days and days[0] <= today and (today - days[1]).days <= immunosuppressants.within_days:
                found.append(ImageFirstOnRecord(entry.reference, describe(entry.codes, entry.text),
                                                "immunosuppression"))
    return tuple(found)


def _months_before(today: date, months: int) -> date:
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    return date(year, month + 1, min(today.day, calendar.monthrange(year, month + 1)[1]))


def _covers(study: frozenset[str], order: frozenset[str]) -> bool:
    """A study counts for the order's region when their regions meet; one whose region cannot be told counts only
    for an order that names none (the safe reading: an MRI of an unknown region does not answer a cancer history)."""
    return not order or bool(study & order)


def spine_studies(record: PatientRecord, knowledge: Knowledge, today: date) -> list[tuple[frozenset[str], date]]:
    """Every MRI, CT or CT myelography of the spine done by today: the segments it covers and its day. A Procedure
    or a DiagnosticReport by its code (a code that names no region takes the Procedure's body site); an
    ImagingStudy by its code, else by a series of a cross-sectional modality, its region the code's or the series'
    body site."""
    config = knowledge.config.imaging

    def sites(codes: Sequence[Code]) -> frozenset[str]:
        return knowledge.segments(knowledge.find(codes, config.body_site_valueset))

    found = []
    for procedure in record.procedures:
        days = procedure_days(procedure, today) if procedure.status in PROCEDURE_STATUSES_DONE else None
        membership = knowledge.find(procedure.codes, config.valueset) if days else None
        if days and membership:
            found.append((knowledge.segments(membership) or sites(procedure.body_sites), days[0]))
    for report in record.reports:
        membership = knowledge.find(report.codes, config.valueset)
        if membership and report.status in REPORT_STATUSES_DONE and report.day is not None:
            found.append((knowledge.segments(membership), report.day))
    for study in record.studies:
        if study.status not in STUDY_STATUSES_DONE or study.day is None:
            continue
        membership = knowledge.find(study.codes, config.valueset)
        segments = knowledge.segments(membership)
        if not segments:
            imaged_series = [series for series in study.series
                             if membership or knowledge.find(series.modality, config.modality_valueset)]
            if not membership and not imaged_series:
                continue
            segments = frozenset().union(*(sites(series.body_site) for series in imaged_series))
        found.append((segments, study.day))
    return [(segments, day) for segments, day in found if day <= today]


def imaged(studies: Sequence[tuple[frozenset[str], date]], knowledge: Knowledge, order: ClassifiedOrder,
           segments: frozenset[str], today: date) -> bool:
    """A study of a region the order covers, within the window for the order's kind."""
    since = _months_before(today, knowledge.config.imaging.months[order.category])
    return any(day >= since and _covers(covered, segments) for covered, day in studies)


def image_first_findings(knowledge: Knowledge, flags: Sequence[ImageFirstOnRecord], order_label: str) -> list[Finding]:
    """The first flag on record leads; the others are the finding's evidence."""
    first = flags[0]
    condition = shorten(first.description)
    if first.from_text:
        condition = WORDING.format(knowledge.config.image_first.read_from_text,
                                   condition=shorten(first.description, TEXT_NAME_LIMIT))
    return [finding(knowledge, "image-first", [flag.reference for flag in flags], condition=condition,
                    order=order_label)]


def imaging_undocumented(knowledge: Knowledge, order: ClassifiedOrder, order_label: str) -> Finding:
    return finding(knowledge, "imaging-undocumented", months=knowledge.config.imaging.months[order.category],
                   order=order_label)
