"""A finding: what the pathway found about one order, with the facts its wording is filled with and the
references of the records behind it."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .config import FindingCode, FindingWording
from .knowledge import Knowledge

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2, "note": 3}


@dataclass(frozen=True)
class Finding:
    code: FindingCode
    severity: str
    facts: Mapping[str, str | int]
    evidence: tuple[str, ...] = ()

    @property
    def leads_a_card(self) -> bool:
        return self.severity != "note"


def finding(knowledge: Knowledge, code: FindingCode, evidence: Sequence[str] = (), **facts: str | int) -> Finding:
    return Finding(code, knowledge.config.findings[code].severity, facts, tuple(evidence))


def ranks(knowledge: Knowledge, codes: Iterable[str]) -> dict[str, int]:
    """The place of each finding code on a card, most important first: by severity, then in the order of
    cards/pathway.yaml's findings; a finding that `outranks` others goes just before the first of them (the card
    keeps the most severe finding's indicator)."""
    wording: dict[str, FindingWording] = {code: found for code, found in knowledge.config.findings.items()}
    position = {code: i for i, code in enumerate(wording)}
    placed = sorted(set(codes), key=lambda code: (SEVERITY_RANK[wording[code].severity], position[code]))
    for code in [code for code in placed if wording[code].outranks]:
        first = next((i for i, other in enumerate(placed) if other in wording[code].outranks), None)
        if first is not None and placed.index(code) > first:
            placed.remove(code)
            placed.insert(first, code)
    return {code: i for i, code in enumerate(placed)}


def most_severe(findings: Iterable[Finding]) -> str | None:
    """The severity of a card: its most severe finding's (None: only notes)."""
    return min((f.severity for f in findings if f.leads_a_card), key=SEVERITY_RANK.__getitem__, default=None)
