"""Image first: cancer history, unexplained weight loss, recent fever, immunosuppression or injection drug use call
for MRI or CT of the spine before an injection or spine surgery (NICE NG59, ACP 2017, NASS); imaging of the order's
region on record within the window answers them (cards/pathway.yaml `image_first`)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from .findings import Finding, finding
from .knowledge import Knowledge
from .orders import ClassifiedOrder
from .reasons import Indication, describe, shorten
from .record import ConditionEntry, PatientRecord
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


def imaged(record: PatientRecord, knowledge: Knowledge, order: ClassifiedOrder, segments: frozenset[str],
           today: date) -> bool:
    """MRI, CT or CT myelography of a region the order covers, done within the window for the order's kind: a
    Procedure, or a DiagnosticReport of it."""
    config = knowledge.config.image_first
    window = config.imaging_days[order.category]
    studies = [(procedure.codes, days[0]) for procedure in record.procedures
               if procedure.status in PROCEDURE_STATUSES_DONE and (days := procedure_days(procedure, today))]
    studies += [(report.codes, report.day) for report in record.reports
                if report.status in REPORT_STATUSES_DONE and report.day is not None]
    for codes, day in studies:
        membership = knowledge.find(codes, config.imaging_valueset)
        if membership and 0 <= (today - day).days <= window and \
                Indication(True, knowledge.segments(membership)).fits(segments):
            return True
    return False


def image_first_findings(knowledge: Knowledge, flags: Sequence[ImageFirstOnRecord], order_label: str) -> list[Finding]:
    """The first flag on record leads; the others are the finding's evidence."""
    first = flags[0]
    condition = shorten(first.description)
    if first.from_text:
        condition = WORDING.format(knowledge.config.image_first.read_from_text,
                                   condition=shorten(first.description, TEXT_NAME_LIMIT))
    return [finding(knowledge, "image-first", [flag.reference for flag in flags], condition=condition,
                    order=order_label)]
