"""Assessment -> Card: the wording comes from cards/pathway.yaml, the shape from the wire models."""
from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..app_context import AppContext, OrderCode
from ..pathway import Assessment, Criteria, Decision, Knowledge, PatientSummary
from ..pathway.assessment import DiagnosisOnRecord
from ..pathway.card_wording import Detail
from ..pathway.config import PATIENT_SUMMARY, FindingCode
from ..pathway.evidence import ConservativeHistory, Evidence
from ..pathway.findings import most_severe
from ..pathway.orders import ClassifiedOrder
from ..pathway.phrases import finding_summary, standings
from ..pathway.reasons import shorten
from ..pathway.wording import WORDING, fitted
from ..settings import EhrProfile
from .models import Action, Card, Coding, Link, OverrideReason, Source, Suggestion

MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")
STANDARD_REASON = "org.cds-spine.standard-override-reason"
EPIC_PREFERENCE_LIST_ITEM = "urn:com.epic.cdshooks.action.code.system.preference-list-item"
"""Epic's code system for an order taken from a site's preference list (Epic's CDS Hooks documentation)."""


@dataclass(frozen=True)
class CardOptions:
    patient_id: str
    info_when_met: bool = False
    smart_launch_url: str | None = None
    """The pathway timeline's launch URL: every card links to it (a `smart` link) when set."""
    hook: str = "order-sign"
    profile: EhrProfile = "generic"
    """How the EHR that shows the cards wants them (docs/deploy.md, "EHR profiles")."""
    epic_referral_preference_item: str | None = None


def _md(text: str) -> str:
    """Record text is data, not Markdown: escape what could format, link or inject HTML."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _dated(wording: Detail, diagnosis: DiagnosisOnRecord) -> str:
    return diagnosis.description if diagnosis.dated else WORDING.format(wording.undated,
                                                                        diagnosis=diagnosis.description)


def _one_per_description(diagnoses: Iterable[DiagnosisOnRecord]) -> list[DiagnosisOnRecord]:
    """One diagnosis per name (a diagnosis coded at every admission is one line): the first on record."""
    seen: dict[str, DiagnosisOnRecord] = {}
    for diagnosis in diagnoses:
        seen.setdefault(diagnosis.description, diagnosis)
    return list(seen.values())


def _unique(lines: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def _lookback_months(knowledge: Knowledge) -> int:
    return round(knowledge.config.lookback_days / 30.4)


def _evidence_lines(knowledge: Knowledge, evidence: Sequence[Evidence]) -> list[str]:
    """Visits grouped by modality ("Physical therapy: 6 visits, first to last"), then each medication course."""
    wording = knowledge.config.card.detail
    visits: dict[str, list[Evidence]] = {}
    for item in evidence:
        if not item.is_medication:
            visits.setdefault(item.label, []).append(item)
    lines = [WORDING.format(wording.procedure_line, label=label, count=len(items), start=min(i.start for i in items),
                            end=max(i.end for i in items)) for label, items in visits.items()]
    lines += [WORDING.format(wording.medication_line, label=item.label, description=_md(item.description),
                             count=len(item.references), start=item.start, end=item.end)
              for item in evidence if item.is_medication]
    return lines


def _not_counted_lines(knowledge: Knowledge, history: ConservativeHistory) -> list[str]:
    """One line per drug or modality and reason, at most `not_counted_limit`, then "and N more"."""
    wording = knowledge.config.card.detail
    lines = [WORDING.format(wording.not_counted_line if len(item.references) > 1 else wording.not_counted_once,
                            description=_md(item.description), reason=_md(item.reason), count=len(item.references),
                            start=item.start, end=item.end) for item in history.not_counted]
    if len(lines) > wording.not_counted_limit:
        hidden = len(lines) - wording.not_counted_limit + 1
        lines = lines[:wording.not_counted_limit - 1] + [WORDING.format(wording.not_counted_more, count=hidden)]
    return lines


def _history_section(knowledge: Knowledge, history: ConservativeHistory) -> list[str]:
    wording = knowledge.config.card.detail
    months = _lookback_months(knowledge)
    if not history.evidence:
        section = [WORDING.format(wording.nothing_found, lookback_months=months)]
    else:
        section = [WORDING.format(wording.found_heading, lookback_months=months)]
        section += _bullets(_evidence_lines(knowledge, history.evidence))
        section.append("")
        assert history.longest is not None  # there is evidence
        section.append(WORDING.format(wording.episode, days=history.days, start=history.longest.start,
                                      end=history.longest.end))
    if history.not_counted:
        section += ["", wording.not_counted_heading]
        section += _bullets(_not_counted_lines(knowledge, history))
    return section


def _bullets(lines: Iterable[str]) -> list[str]:
    return [f"- {line}" for line in lines]


def _paragraphs(*blocks: Iterable[str]) -> str:
    return "\n\n".join("\n".join(block) for block in blocks if block)


def _headed(heading: str, lines: Sequence[str]) -> list[str]:
    return [heading, *_bullets(lines)] if lines else []


def _detail(assessment: Assessment, knowledge: Knowledge) -> str:
    config = knowledge.config
    wording = config.card.detail
    rule = config.rules.of(assessment.order.category)
    missing = [WORDING.format(wording.missing, required=assessment.required_days, order=assessment.order_label)
               ] if assessment.decision is Decision.NOT_MET else []
    missing += [WORDING.format(wording.pending_referral, description=_md(referral.description))
                for referral in assessment.pending_referrals]
    also = [finding_summary(knowledge, f.code, dict(f.facts)) for f in assessment.findings if f is not assessment.lead]
    context = _red_flag_lines(wording, assessment.red_flags)
    if assessment.prior_injections:
        context.append(WORDING.format(
            wording.prior_esi_line, region=config.regions.get(assessment.order.region, ""),
            count=len(assessment.prior_injections), last=assessment.prior_injections[-1].day))
    context += _unique(WORDING.format(wording.diagnosis_line, diagnosis=_md(_dated(wording, d)))
                       for d in assessment.diagnoses if not d.is_red_flag)
    context += _unique(WORDING.format(wording.score_line, measure=_md(score.label), value=score.shown,
                                      date=score.day.isoformat()) for score in assessment.scores)
    if assessment.unreadable:
        kinds = Counter(assessment.unreadable)
        context.append(WORDING.format(wording.unreadable, count=len(assessment.unreadable), entries=", ".join(
            WORDING.format(wording.counted_kind, kind=kind, count=count) if count > 1 else kind
            for kind, count in kinds.items())))
    if assessment.partly_read:
        context.append(WORDING.format(wording.partly_read, count=len(assessment.partly_read),
                                      entries=", ".join(assessment.partly_read)))
    lines = _unique(WORDING.format(wording.finding_line, title=line.title, line=line.text, source=line.source.label,
                                   url=line.source.url)
                    for f in assessment.findings if (line := config.findings[f.code].line))
    return _paragraphs(
        _history_section(knowledge, assessment.history), missing, _headed(wording.also_heading, also), lines,
        _headed(wording.on_record_heading, context),
        [WORDING.format(wording.rule, rule=rule.rule, source=rule.source.label, url=rule.source.url)],
        [config.card.pathway],
    )


def _referral(knowledge: Knowledge, options: CardOptions) -> dict[str, Any]:
    """The referral a suggestion orders; under the epic profile, the site's preference-list item (Epic takes
    the order's details from it)."""
    referral = knowledge.config.card.suggestions.referral
    coding = {"system": referral.system, "code": referral.code, "display": referral.display}
    if options.profile == "epic":
        coding = {"system": EPIC_PREFERENCE_LIST_ITEM, "code": str(options.epic_referral_preference_item)}
    return {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{options.patient_id}"},
        "code": {"coding": [coding], "text": referral.text},
    }


def _removals(assessments: Sequence[Assessment], knowledge: Knowledge) -> list[Action]:
    """Remove each order the card speaks for (those the EHR sent with an id)."""
    wording = knowledge.config.card.suggestions
    return [Action(type="delete", resourceId=a.order.reference,
                   description=wording.replace_delete_description.format(order=a.order_label))
            for a in assessments if a.order.reference]


def _suggested_orders(assessments: Sequence[Assessment], knowledge: Knowledge, options: CardOptions,
                      ids: Sequence[str]) -> list[Suggestion] | None:
    """The orders the lead finding suggests (an urgent MRI of the order's region instead of the injection, a spine
    surgery consult). Not under the epic profile: Epic creates an order only from a site's preference-list item,
    and the card's summary already says what to do."""
    if options.profile == "epic":
        return None
    suggestions = []
    for order_id in ids:
        order = knowledge.config.card.suggestions.orders[order_id]
        code = order.code_for(assessments[0].order.region)
        if code is None:
            continue
        actions = _removals(assessments, knowledge) if order.replaces_order else []
        actions.append(Action(type="create", description=order.description, resource={
            "resourceType": "ServiceRequest", "status": "draft", "intent": "order", "priority": order.priority,
            "subject": {"reference": f"Patient/{options.patient_id}"},
            "code": {"coding": [{"system": order.system, "code": code.code, "display": code.display}],
                     "text": order.text}}))
        suggestions.append(Suggestion(label=order.label, uuid=uuid.uuid4(), actions=actions))
    return suggestions or None


def _suggestions(assessments: Sequence[Assessment], knowledge: Knowledge, options: CardOptions
                 ) -> list[Suggestion] | None:
    """What the lead finding suggests when it names orders; else order the referral instead of the injection or
    surgery (every order the card speaks for), or beside it. Under the epic profile (where suggestions may not
    exclude each other) only beside it, and only with the site's preference-list item."""
    assessment = assessments[0]
    lead = assessment.lead
    suggested = knowledge.config.findings[lead.code].suggest if lead else ()
    if suggested:
        return _suggested_orders(assessments, knowledge, options, suggested)
    if assessment.decision is not Decision.NOT_MET or assessment.pending_referrals:
        return None
    wording = knowledge.config.card.suggestions
    create = Action(type="create", description=wording.create_description, resource=_referral(knowledge, options))
    if options.profile == "epic":
        return [Suggestion(label=wording.add_label, uuid=uuid.uuid4(), actions=[create])] \
            if options.epic_referral_preference_item else None
    suggestions = []
    if removals := _removals(assessments, knowledge):
        suggestions.append(Suggestion(label=wording.replace_label, uuid=uuid.uuid4(), actions=[*removals, create]))
    suggestions.append(Suggestion(label=wording.add_label, uuid=uuid.uuid4(), actions=[create]))
    return suggestions


def _override_reasons(knowledge: Knowledge, topic: FindingCode) -> list[OverrideReason]:
    """The reasons that fit the card's lead finding (its own, where it names them; else every reason not kept for
    a finding of its own), each with the CDS Hooks 3.0 ballot's standard code where one fits (an EHR may send
    either back)."""
    reasons = knowledge.config.card.override_reasons
    own = knowledge.config.findings[topic].override_reasons
    offered = [r for r in reasons.reasons if r.code in own] if own else [r for r in reasons.reasons
                                                                         if not r.own_finding]
    return [OverrideReason(system=reasons.system, code=r.code, display=r.display, extension={
        STANDARD_REASON: Coding(system=reasons.standard_system, code=r.standard)} if r.standard else None)
        for r in offered]


def _links(source: Source, knowledge: Knowledge, options: CardOptions, order: ClassifiedOrder | None = None
           ) -> list[Link] | None:
    """The source's page and the pathway timeline. Oracle Health strips links its site has not allow-listed:
    there, only the timeline's (which the site registers); the source stays named in the card's source. The
    timeline's appContext names the hook, the patient and the draft order, so that the app shows that order's
    assessment, and only for that patient."""
    links = [Link(label=source.label, url=source.url, type="absolute")] \
        if source.url and options.profile != "oracle-health" else []
    if options.smart_launch_url:
        context = AppContext(hook=options.hook, patient=options.patient_id, draftOrder=order.reference if order else None,
                             code=OrderCode(system=order.code.system, code=order.code.code) if order else None,
                             region=order.region if order else None)
        links.append(Link(label=knowledge.config.card.smart_link_label, url=options.smart_launch_url, type="smart",
                          appContext=context.model_dump_json(exclude_none=True)))
    return links or None


def _topic(knowledge: Knowledge, code: str) -> Coding:
    """What the card is about (cards/card-topics.json), in its source."""
    topics = knowledge.topics
    return Coding(system=topics.system, code=code, display=topics.displays[code])


def _saying(assessment: Assessment, knowledge: Knowledge, options: CardOptions
            ) -> tuple[FindingCode, dict[str, str | int]] | None:
    """What the order's card would say: its topic and the facts of its summary; None: no card."""
    if assessment.lead:
        return assessment.lead.code, dict(assessment.lead.facts)
    if options.info_when_met and assessment.decision is Decision.MET:
        return "criteria-met", {"days": assessment.history.days, "therapy": assessment.history.phrase(knowledge),
                                "order": assessment.order_label}
    return None


def render_orders(assessments: Sequence[Assessment], knowledge: Knowledge, options: CardOptions) -> list[Card | None]:
    """A card per order, by position; orders whose cards would say the same but for the order's name (an ESI and
    its add-on level, both sides; a decompression and its fusion) share one card, which names them all, offers
    to replace them all, and is the first one's (the others' positions hold None)."""
    groups: dict[str, tuple[tuple[FindingCode, dict[str, str | int]], list[int]]] = {}
    for index, assessment in enumerate(assessments):
        if (saying := _saying(assessment, knowledge, options)) is not None:
            topic, facts = saying
            key = repr((topic, assessment.order.category, assessment.order.region,
                        sorted((name, value) for name, value in facts.items() if name != "order")))
            groups.setdefault(key, (saying, []))[1].append(index)
    cards: list[Card | None] = [None] * len(assessments)
    for saying, indexes in groups.values():
        cards[indexes[0]] = _render([assessments[i] for i in indexes], saying, knowledge, options)
    return cards


def _render(assessments: Sequence[Assessment], saying: tuple[FindingCode, dict[str, str | int]],
            knowledge: Knowledge, options: CardOptions) -> Card:
    """The card the first order's assessment makes (`saying`: what it says), speaking for every order given
    (they share its finding)."""
    config = knowledge.config
    assessment = assessments[0]
    topic, facts = saying
    if "order" in facts:
        facts["order"] = config.card.order_joiner.join(dict.fromkeys(a.order_label for a in assessments))
    summary = finding_summary(knowledge, topic, facts)
    indicator = most_severe(assessment.findings) or config.findings[topic].severity
    rule = config.rules.of(assessment.order.category)
    source = Source(label=rule.source.label, url=str(rule.source.url), topic=_topic(knowledge, topic))
    suggestions = _suggestions(assessments, knowledge, options)
    return Card(
        uuid=uuid.uuid4(), summary=fitted(summary), indicator=indicator, detail=_detail(assessment, knowledge),
        source=source, suggestions=suggestions,
        selectionBehavior=("any" if options.profile == "epic" else "at-most-one") if suggestions else None,
        overrideReasons=_override_reasons(knowledge, topic), links=_links(source, knowledge, options, assessment.order),
    )


def _standing(knowledge: Knowledge, summary: PatientSummary) -> list[str]:
    """The steps after conservative therapy (ESI, regenerative injection, surgery) where they stand, what is
    missing for ESI and surgery, and the ESIs of every region."""
    config = knowledge.config
    wording = config.patient_view
    esi, regenerative, surgery = standings(knowledge, summary)
    lines = [WORDING.format(wording.standing_line, name=wording.esi_name, criteria=esi),
             WORDING.format(wording.standing_line, name=wording.regenerative_name, criteria=regenerative),
             WORDING.format(wording.standing_line, name=wording.surgery_name, criteria=surgery)]
    for criteria, days, required, name in ((summary.esi, summary.history.days, summary.esi_required, wording.esi_name),
                                           (summary.surgery, summary.surgery_days, summary.surgery_required,
                                            wording.surgery_name)):
        if criteria is Criteria.NOT_MET:
            lines.append(WORDING.format(wording.missing, missing=required - days, name=name, required=required))
    rule = config.rules.esi
    lines += [WORDING.format(wording.injections_line, region=config.regions.get(region.region, ""),
                             count=len(region.injections), dates=", ".join(i.day.isoformat() for i in region.injections),
                             limit=rule.max_sessions_per_region, min_days=rule.min_days_between)
              for region in summary.injections]
    return lines


def _red_flag_lines(wording: Detail, flags: Iterable[DiagnosisOnRecord]) -> list[str]:
    """One line per red flag, saying so when it was read from the diagnosis's words."""
    return _unique(WORDING.format(wording.red_flag_from_text if flag.from_text else wording.red_flag_line,
                                  condition=_md(_dated(wording, flag)))
                   for flag in _one_per_description(flags))


def render_patient_summary(summary: PatientSummary | None, knowledge: Knowledge, options: CardOptions) -> list[Card]:
    """One card: a red flag leads (to be evaluated urgently); else where ESI and surgery stand."""
    if summary is None:
        return []
    config = knowledge.config
    wording = config.patient_view
    detail = config.card.detail
    esi, _, surgery = standings(knowledge, summary)
    flags = _one_per_description(summary.red_flags)
    red_flags = _red_flag_lines(detail, flags)
    diagnoses = _unique(WORDING.format(detail.diagnosis_line, diagnosis=_md(_dated(detail, d)))
                        for d in summary.diagnoses if not d.is_red_flag)
    indicator: Literal["info", "warning", "critical"]
    if flags:
        text = WORDING.format(wording.red_flag, condition=shorten(flags[0].description))
        indicator = wording.red_flag_severity
    else:
        text = WORDING.format(wording.summary, days=summary.history.days, esi=esi, surgery=surgery)
        indicator = "info"
    source = Source(label=config.card.source_label, url=str(config.card.source_url),
                    topic=_topic(knowledge, "red-flag" if flags else PATIENT_SUMMARY))
    return [Card(
        uuid=uuid.uuid4(), summary=fitted(text), indicator=indicator, source=source,
        detail=_paragraphs(red_flags, _headed(wording.standing_heading, _standing(knowledge, summary)),
                           _history_section(knowledge, summary.history),
                           _headed(detail.on_record_heading, diagnoses), [config.card.pathway]),
        links=_links(source, knowledge, options),
    )]
