"""A finding: what the pathway found about one order, with the facts its wording is filled with and the
references of the records behind it."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import FindingCode
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
