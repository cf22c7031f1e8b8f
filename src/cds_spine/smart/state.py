"""What the pathway timeline's routes need, provided by create_app."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

import httpx
from fastapi import Depends

from ..appstate import injected
from ..audit.sessions import TimelineSessions
from ..fhir.bundles import Keep
from ..fhir.client import FhirClient
from ..pathway import Knowledge
from .oauth import DiscoveryCache
from .sessions import Sealer


@dataclass(frozen=True)
class SmartState:
    client_id: str | None
    """CDS_SPINE_SMART_CLIENT_ID; None: the app is off."""
    base_url: str
    """CDS_SPINE_PUBLIC_BASE_URL, without a trailing slash: the redirect URI starts with it."""
    fhir_servers: tuple[str, ...]
    """The FHIR base URLs the app may be launched from (normalised)."""
    sealer: Sealer
    sessions: TimelineSessions
    """The sessions the service keeps (in the audit store): a cookie opens a page only while its session is."""
    idle_seconds: float
    http: httpx.AsyncClient
    fhir: FhirClient
    knowledge: Knowledge
    keep: Keep
    optional: Mapping[str, str]
    """The optional queries (the Observations), as a call fetches them."""
    fhir_timeout_seconds: float
    clock: Callable[[], datetime]
    patient_hash: Callable[[str], str]
    """The keyed hash patient ids are logged as."""
    discovery: DiscoveryCache = field(default_factory=DiscoveryCache)
    """The FHIR servers' SMART configurations, fetched once every few minutes rather than at every launch."""

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/app/callback"


Smart = Annotated[SmartState, Depends(injected(SmartState))]
