"""A warning the clinician has already answered is not repeated: an order card whose topic the clinician
overrode for the same order lately (audit.memory) is held back, and the audit records it with the override it
follows. A new finding (another topic) still shows."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..audit.memory import RememberedOverride
from ..audit.store import Suppression
from .answers import Answer


def without_repeats(answer: Answer, remembered: Sequence[RememberedOverride]) -> tuple[Answer, dict[int, Suppression]]:
    """The answer without the cards already overridden, and what was held back, by assessment index."""
    assessed = list(answer.assessed)
    held: dict[int, Suppression] = {}
    for index, (assessment, card) in enumerate(assessed):
        topic = card.source.topic.code if card and card.source.topic else None
        override = next((r for r in remembered if r.topic == topic and r.is_for(assessment.order)), None)
        if topic and override:
            assessed[index] = (assessment, None)
            held[index] = Suppression(topic, override.card, override.overridden_at)
    return replace(answer, assessed=assessed), held
