"""The pathway's findings and standings in the words of cards/pathway.yaml: one phrasing for the cards and
the pathway timeline, so that both say the same thing in the same words."""
from __future__ import annotations

from collections.abc import Mapping

from .config import FindingCode
from .knowledge import Knowledge
from .reasons import shorten
from .standing import Criteria, PatientSummary
from .wording import SUMMARY_LIMIT, WORDING


def finding_summary(knowledge: Knowledge, code: FindingCode, facts: Mapping[str, str | int]) -> str:
    """The finding's summary; when it would reach the card's limit, its short words, and the diagnosis's name cut
    only as far as the card needs (the action the summary says is never cut)."""
    wording = knowledge.config.findings[code]
    summary = WORDING.format(wording.summary, **facts)
    if len(summary) < SUMMARY_LIMIT or not wording.short_summary:
        return summary
    summary = WORDING.format(wording.short_summary, **facts)
    over = len(summary) - (SUMMARY_LIMIT - 1)
    if over > 0 and "condition" in facts:
        name = str(facts["condition"])
        summary = WORDING.format(wording.short_summary, **{**facts, "condition": shorten(name, len(name) - over)})
    return summary


def criteria_phrase(knowledge: Knowledge, summary: PatientSummary, criteria: Criteria, days: int, required: int,
                    met: str | None = None) -> str:
    """Where ESI, a regenerative injection or surgery stands, in the words of `patient_view` (`met`: the words
    for a step whose criteria are met, when not `patient_view.met`)."""
    wording = knowledge.config.patient_view
    template = {Criteria.MET: met or wording.met, Criteria.NOT_MET: wording.not_met, Criteria.EXEMPT: wording.exempt,
                Criteria.RED_FLAG_STOP: wording.red_flag_stop, Criteria.INFECTION_STOP: wording.infection_stop,
                Criteria.NOT_INDICATED: wording.not_indicated, Criteria.LIMIT_REACHED: wording.limit_reached,
                Criteria.TOO_SOON: wording.too_soon, Criteria.ESI_FIRST: wording.esi_first,
                Criteria.SYMPTOMS_RECENT: wording.symptoms_recent, Criteria.POOR_RESPONSE: wording.poor_response,
                Criteria.IMAGE_FIRST: wording.image_first}[criteria]
    blocking = summary.blocking
    after = blocking.next_day if blocking else summary.esi_from
    region = blocking.region if blocking else summary.esi_region
    return WORDING.format(template, missing=max(0, required - days),
                          region=knowledge.config.regions.get(region, "") if region else "",
                          count=len(blocking.injections) if blocking else 0,
                          next=after.isoformat() if after else "")


def standings(knowledge: Knowledge, summary: PatientSummary) -> tuple[str, str, str]:
    """(ESI, regenerative injection, surgery): where each step after conservative therapy stands."""
    return (criteria_phrase(knowledge, summary, summary.esi, summary.history.days, summary.esi_required),
            criteria_phrase(knowledge, summary, summary.regenerative, summary.history.days, summary.esi_required,
                            knowledge.config.patient_view.regenerative_met),
            criteria_phrase(knowledge, summary, summary.surgery, summary.surgery_days, summary.surgery_required))
