"""Override memory: the cards a clinician overrode lately for a patient, each with its topic and its order, so
that a later call for the same order does not repeat a warning already answered (CDS_SPINE_OVERRIDE_MEMORY_HOURS).
A card counts while its latest feedback is an override."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, and_, bindparam, not_, select
from sqlalchemy.orm import aliased

from ..pathway import ClassifiedOrder
from . import tables


@dataclass(frozen=True)
class RememberedOverride:
    card: str
    topic: str
    order_reference: str | None
    order_codes: tuple[tuple[str, str], ...]
    """(system, code) of the overridden order."""
    overridden_at: datetime

    def is_for(self, order: ClassifiedOrder) -> bool:
        """The same order: the same draft resource when both have an id, else an order of the same code."""
        if order.reference and self.order_reference:
            return order.reference == self.order_reference
        return (order.code.system, order.code.code) in self.order_codes


def _recent_overrides_query() -> Select[Any]:
    """Built once: from the patient's overrides received in the window (feedback keeps its card's patient, under an
    index: none for most patients, and then nothing else is read), to their cards, calls and orders; the calling
    EHR's patient only (the same id at another hospital is another patient); a card counts while its latest
    feedback is the override."""
    c, a, k, f = tables.calls, tables.assessments, tables.cards, tables.feedback
    later = aliased(f)
    return (select(k.c.uuid, k.c.topic, a.c.order_reference, a.c.codes, f.c.received_at)
            .select_from(f.join(k, and_(k.c.uuid == f.c.card_uuid, k.c.call_id == f.c.call_id))
                         .join(c, c.c.id == f.c.call_id).join(a, a.c.id == k.c.assessment_id))
            .where(f.c.patient == bindparam("patient"), f.c.outcome == "overridden", f.c.received_at >= bindparam("since"),
                   c.c.origin == bindparam("origin"),
                   c.c.received_at >= bindparam("since"), k.c.topic.is_not(None),
                   not_(select(later.c.id).where(later.c.card_uuid == f.c.card_uuid, later.c.call_id == f.c.call_id,
                                                 later.c.received_at > f.c.received_at).exists()))
            .order_by(f.c.received_at.desc()))


RECENT_OVERRIDES = _recent_overrides_query()
OVERRIDDEN_LATELY = (select(tables.feedback.c.id)
                     .where(tables.feedback.c.patient == bindparam("patient"), tables.feedback.c.outcome == "overridden",
                            tables.feedback.c.received_at >= bindparam("since"))
                     .limit(1))
"""Whether the patient has any override in the window: asked first, since most patients have none. One probe of
the same index, on one table: PostgreSQL plans RECENT_OVERRIDES (four tables) afresh on each call, about 0.5 ms, and
the read took 1.1 ms where this takes 0.5 (mostly the round trips)."""


def recent_overrides(engine: Engine, origin: str, patient: str, since: datetime) -> list[RememberedOverride]:
    """The patient's cards (as the store keeps the patient: hashed or plain), in calls from the same EHR
    (`origin`), shown since `since` whose latest feedback is an override received since then, newest first."""
    parameters = {"since": since, "patient": patient, "origin": origin}
    with engine.connect() as connection:
        if connection.execute(OVERRIDDEN_LATELY, parameters).first() is None:
            return []
        return [RememberedOverride(row.uuid, row.topic, row.order_reference,
                                   tuple((code["system"], code["code"]) for code in row.codes),
                                   row.received_at)
                for row in connection.execute(RECENT_OVERRIDES, parameters)]
