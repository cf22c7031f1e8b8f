"""Referrals to conservative therapy that are ordered but not done: in this ordering session, still open, or
recorded as done lately with no therapy since."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from .evidence import ConservativeHistory
from .knowledge import Knowledge
from .reasons import describe
from .record import (
    Code,
    DraftOrder,
    PatientRecord,
)
from .timing import procedure_days

REFERRAL_STATUSES_PENDING = frozenset({"active", "on-hold", "draft"})
PROCEDURE_STATUSES_VOID = frozenset({"not-done", "entered-in-error"})


@dataclass(frozen=True)
class Referral:
    """A referral to conservative therapy that is ordered but not done."""

    reference: str | None
    """None: a draft order the EHR sent without an id."""
    description: str



def _is_referral_code(codes: Sequence[Code], knowledge: Knowledge) -> bool:
    conservative = knowledge.config.conservative
    valuesets = [conservative.referrals.valueset, *(group.valueset for group in conservative.modalities)]
    return any(knowledge.find(codes, valueset) for valueset in valuesets)


def session_referrals(session_orders: Sequence[DraftOrder], knowledge: Knowledge) -> tuple[Referral, ...]:
    """Referrals to conservative therapy among the draft orders of this ordering session."""
    return tuple(Referral(order.reference, describe(order.codes, order.text)) for order in session_orders
                 if _is_referral_code(order.codes, knowledge))


def pending_referrals(record: PatientRecord, in_session: Sequence[Referral], knowledge: Knowledge,
                      history: ConservativeHistory, today: date) -> tuple[Referral, ...]:
    """Referrals to conservative therapy ordered but not done: `in_session` (session_referrals), ServiceRequests
    still open, and referrals recorded as Procedures in the last `referrals.pending_days` with no therapy since."""
    referrals = knowledge.config.conservative.referrals
    found = list(in_session)
    found += [Referral(entry.reference, describe(entry.codes, entry.text)) for entry in record.service_requests
              if entry.status in REFERRAL_STATUSES_PENDING and _is_referral_code(entry.codes, knowledge)]
    last_visit = max((e.end for e in history.evidence if not e.is_medication), default=None)
    for entry in record.procedures:
        days = procedure_days(entry, today)
        if (days and entry.status not in PROCEDURE_STATUSES_VOID and knowledge.find(entry.codes, referrals.valueset)
                and today - timedelta(days=referrals.pending_days) <= days[0] <= today
                and (last_visit is None or last_visit <= days[0])):
            found.append(Referral(entry.reference, describe(entry.codes, entry.text)))
    return tuple(found)
