"""The app's two cookies, sealed (encrypted and authenticated, Fernet) with the deployment's secret
(CDS_SPINE_SECRET_KEYS, never in the audit store: who can read the database cannot open them), so that every
worker and replica opens what another sealed and the browser can neither read nor change them:
the launch (state, PKCE verifier, the EHR's endpoints) between the launch and the callback, and the session
(the FHIR server, the access token, the patient, the card's context) after it. The token lives only there and
in memory while a page is built: never in a log, the audit or a URL."""
from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import BaseModel, ConfigDict, ValidationError

LAUNCH_COOKIE = "cds_spine_smart_launch"
SESSION_COOKIE = "cds_spine_smart_session"


class Launch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state: str
    verifier: str
    iss: str
    token_endpoint: str


class Session(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str
    access_token: str
    patient: str
    expires_at: float
    launch_id: str
    """The launch this session belongs to: the timeline's URL names it, so that a tab opened for one patient never
    shows the patient of a later launch in the same browser (the cookie holds the latest launch only)."""
    banner: bool = True
    """The EHR's need_patient_banner: False when the EHR already shows who the patient is."""
    app_context: str | None = None
    """The card's appContext as the cards wrote it (JSON), read again by the timeline."""

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


class Sealer:
    """Seals with the first secret and opens with any (a rotation: the new secret first, the old one kept until
    the cookies it sealed have expired). No secret: a random one, for this process only."""

    def __init__(self, secrets_given: Sequence[bytes]) -> None:
        keys = secrets_given or [secrets.token_bytes(32)]
        self._fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(
            hashlib.sha256(b"cds-spine smart cookies\x00" + key).digest())) for key in keys])

    def seal(self, value: BaseModel) -> str:
        return self._fernet.encrypt(orjson.dumps(value.model_dump())).decode("ascii")

    def open(self, sealed: str | None, kind: type[Any], max_age_seconds: int) -> Any:
        """The cookie's content as `kind`, or None when it is absent, older than `max_age_seconds`, or not sealed
        by this service."""
        if not sealed:
            return None
        try:
            return kind.model_validate(orjson.loads(self._fernet.decrypt(sealed.encode("ascii"), ttl=max_age_seconds)))
        except (InvalidToken, ValueError, ValidationError, UnicodeEncodeError):
            return None
