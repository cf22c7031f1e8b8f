"""Assessment -> Card: the wording comes from cards/pathway.yaml, the shape from the wire models."""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..pathway import Assessment, Decision, Knowledge, PatientSummary
from ..pathway.evidence import ConservativeHistory, Evidence
from .models import Action, Card, Link, OverrideReason, Source, Suggestion

MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


@dataclass(frozen=True)
class CardOptions:
    patient_id: str
    info_when_met: bool = False
    smart_app_url: str | None = None


def _md(text: str) -> str:
    """Record text is data, not Markdown: escape what could format, link or inject HTML."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _lookback_months(knowledge: Knowledge) -> int:
    return round(knowledge.config.lookback_days / 30.4)


def _evidence_lines(knowledge: Knowledge, evidence: Sequence[Evidence]) -> list[str]:
    """Visits grouped by modality ("Physical therapy: 6 visit(s), first to last"), then each medication."""
    wording = knowledge.config.card.detail
    visits: dict[str, list[Evidence]] = {}
    for item in evidence:
        if not item.is_medication:
            visits.setdefault(item.label, []).append(item)
    lines = [wording.procedure_line.format(label=label, count=len(items), start=min(i.start for i in items),
                                           end=max(i.end for i in items)) for label, items in visits.items()]
    lines += [wording.medication_line.format(label=item.label, description=_md(item.description), start=item.start,
                                             end=item.end) for item in evidence if item.is_medication]
    return lines


def _history_section(knowledge: Knowledge, history: ConservativeHistory) -> list[str]:
    wording = knowledge.config.card.detail
    months = _lookback_months(knowledge)
    if not history.evidence:
        section = [wording.nothing_found.format(lookback_months=months)]
    else:
        section = [wording.found_heading.format(lookback_months=months)]
        section += _bullets(_evidence_lines(knowledge, history.evidence))
        section.append("")
        section.append(wording.episode.format(days=history.days, start=history.longest.start,
                                              end=history.longest.end))
    if history.not_counted:
        section += ["", wording.not_counted_heading]
        section += _bullets(wording.not_counted_line.format(description=_md(item.description), reason=item.reason)
                            for item in history.not_counted)
    return section


def _bullets(lines: Iterable[str]) -> list[str]:
    return [f"- {line}" for line in lines]


def _paragraphs(*blocks: Iterable[str]) -> str:
    return "\n\n".join("\n".join(block) for block in blocks if block)


def _summary(knowledge: Knowledge, code: str, facts: dict) -> str:
    return knowledge.config.findings[code].summary.format(**facts)


def _detail(assessment: Assessment, knowledge: Knowledge) -> str:
    config = knowledge.config
    wording = config.card.detail
    rule = config.rules.esi if assessment.order.category == "esi" else config.rules.surgery
    missing = [wording.missing.format(required=assessment.required_days, order=assessment.order_label)
               ] if assessment.decision is Decision.NOT_MET else []
    missing += [wording.pending_referral.format(reference=reference) for reference in assessment.pending_referrals]
    also = [_summary(knowledge, f.code, dict(f.facts)) for f in assessment.findings[1:]]
    context = [wording.red_flag_line.format(condition=_md(flag.description), reference=flag.reference)
               for flag in assessment.red_flags]
    if assessment.prior_injections:
        context.append(wording.prior_esi_line.format(
            region=config.regions.get(assessment.order.region, ""), count=len(assessment.prior_injections),
            last=assessment.prior_injections[-1].day))
    context += [wording.diagnosis_line.format(diagnosis=_md(d.description))
                for d in assessment.diagnoses if d.group in ("qualifying", "axial")]
    if assessment.unreadable:
        context.append(wording.unreadable.format(count=len(assessment.unreadable),
                                                 references=", ".join(assessment.unreadable)))
    return _paragraphs(
        _history_section(knowledge, assessment.history), missing, _bullets(also), _bullets(context),
        [wording.rule.format(rule=rule.rule, source=rule.source.label, url=rule.source.url)],
        [config.card.pathway],
    )


def _referral(knowledge: Knowledge, options: CardOptions) -> dict:
    referral = knowledge.config.card.suggestions.referral
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{options.patient_id}"},
        "code": {"coding": [{"system": referral.system, "code": referral.code, "display": referral.display}],
                 "text": referral.text},
    }


def _suggestions(assessment: Assessment, knowledge: Knowledge, options: CardOptions) -> list[Suggestion] | None:
    if assessment.decision is not Decision.NOT_MET or assessment.pending_referrals:
        return None
    wording = knowledge.config.card.suggestions
    create = Action(type="create", description=wording.create_description, resource=_referral(knowledge, options))
    suggestions = []
    if assessment.order.reference:
        delete = Action(type="delete", resourceId=assessment.order.reference,
                        description=wording.replace_delete_description.format(order=assessment.order_label))
        suggestions.append(Suggestion(label=wording.replace_label, uuid=uuid.uuid4(), actions=[delete, create]))
    suggestions.append(Suggestion(label=wording.add_label, uuid=uuid.uuid4(), actions=[create]))
    return suggestions


def _override_reasons(knowledge: Knowledge) -> list[OverrideReason]:
    reasons = knowledge.config.card.override_reasons
    return [OverrideReason(system=reasons.system, code=r.code, display=r.display) for r in reasons.reasons]


def _links(source: Source, knowledge: Knowledge, options: CardOptions) -> list[Link] | None:
    links = [Link(label=source.label, url=source.url, type="absolute")] if source.url else []
    if options.smart_app_url:
        links.append(Link(label=knowledge.config.card.smart_link_label, url=options.smart_app_url, type="smart"))
    return links or None


def render_one(assessment: Assessment, knowledge: Knowledge, options: CardOptions) -> Card | None:
    """The card for one order, or None when there is nothing to say."""
    config = knowledge.config
    if assessment.findings:
        lead = assessment.findings[0]
        summary, indicator = _summary(knowledge, lead.code, dict(lead.facts)), lead.severity
    elif options.info_when_met and assessment.decision is Decision.MET:
        summary = _summary(knowledge, "criteria-met", {"days": assessment.history.days,
                                                         "order": assessment.order_label})
        indicator = config.findings["criteria-met"].severity
    else:
        return None
    rule = config.rules.esi if assessment.order.category == "esi" else config.rules.surgery
    source = Source(label=rule.source.label, url=str(rule.source.url))
    suggestions = _suggestions(assessment, knowledge, options)
    return Card(
        uuid=uuid.uuid4(), summary=summary, indicator=indicator, detail=_detail(assessment, knowledge),
        source=source, suggestions=suggestions, selectionBehavior="at-most-one" if suggestions else None,
        overrideReasons=_override_reasons(knowledge), links=_links(source, knowledge, options),
    )


def render_patient_summary(summary: PatientSummary | None, knowledge: Knowledge, options: CardOptions) -> list[Card]:
    if summary is None:
        return []
    config = knowledge.config
    wording = config.patient_view
    words = {Decision.MET: wording.met, Decision.NOT_MET: wording.not_met, Decision.EXEMPT: wording.exempt}
    detail = config.card.detail
    diagnoses = _bullets(detail.diagnosis_line.format(diagnosis=_md(d.description)) for d in summary.diagnoses)
    text = wording.summary.format(days=summary.history.days, esi=words[summary.esi], surgery=words[summary.surgery])
    source = Source(label=config.card.source_label)
    return [Card(
        uuid=uuid.uuid4(), summary=text, indicator="info", source=source,
        detail=_paragraphs(_history_section(knowledge, summary.history), diagnoses, [config.card.pathway]),
        links=_links(source, knowledge, options),
    )]
