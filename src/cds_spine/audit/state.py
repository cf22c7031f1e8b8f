"""What the audit's routes (the /audit API and the dashboard's pages) need, provided by create_app."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends

from ..appstate import injected
from ..pathway import Knowledge
from .access import AuditAccess
from .measure import MeasureDefinition
from .store import SqlAuditStore


@dataclass(frozen=True)
class AuditState:
    access: AuditAccess
    store: SqlAuditStore
    knowledge: Knowledge
    measure: MeasureDefinition
    bulk_runs_dir: Path | None
    """CDS_SPINE_BULK_RUNS_DIR: the `cds-spine audit-bulk` runs the reports can read."""
    adherence_target: float
    body_timeout_seconds: float
    """For the sign-in form (CDS_SPINE_BODY_TIMEOUT_SECONDS)."""


Audit = Annotated[AuditState, Depends(injected(AuditState))]
