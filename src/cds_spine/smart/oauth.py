"""SMART App Launch 2.0 as a public client: the EHR's endpoints from `<iss>/.well-known/smart-configuration`,
the authorization code flow with PKCE (S256), scopes for exactly the resource types the service reads (SMART
v2 scopes, v1 `.read` scopes where the server offers only those), and the token exchange. Nothing here logs
a code, a verifier or a token."""
from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..app_context import AppContext
from ..fhir.prefetch import RESOURCE_TYPES_READ
from ..settings import https_url

log = logging.getLogger(__name__)
LAUNCH_TTL_SECONDS = 600
"""How long a launch may take, from the EHR's launch to the callback (the user may have to sign in)."""


class LaunchProblem(Exception):
    """The launch cannot go on; the message says why in words a clinician or the IT team can act on, and
    holds no token, code or patient data. `status` is the page's HTTP status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title


class SmartConfiguration(BaseModel):
    """What the app needs of `.well-known/smart-configuration` (SMART App Launch 2.0)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    authorization_endpoint: str
    token_endpoint: str
    capabilities: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()
    code_challenge_methods_supported: tuple[str, ...] = ()

    @field_validator("authorization_endpoint", "token_endpoint")
    @classmethod
    def https_only(cls, value: str) -> str:
        return https_url(value)

    @property
    def speaks_v2_scopes(self) -> bool:
        """SMART v2 scopes (`.rs`) when the server says it grants them; else v1 (`.read`)."""
        return "permission-v2" in self.capabilities or any(
            scope.rsplit(".", 1)[-1] in ("rs", "r", "cruds") for scope in self.scopes_supported if "/" in scope)


class TokenResponse(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    access_token: str = Field(min_length=1)
    token_type: str
    expires_in: int | None = Field(default=None, ge=0)
    patient: str | None = Field(default=None, min_length=1, max_length=256)
    appContext: str | dict[str, Any] | None = None
    need_patient_banner: bool = True
    """SMART App Launch: False when the EHR shows the patient beside the app; absent, the app shows them."""

    @field_validator("token_type")
    @classmethod
    def bearer(cls, value: str) -> str:
        if value.lower() != "bearer":
            raise ValueError(f"token_type must be Bearer, not {value!r}")
        return value

    def app_context(self) -> AppContext | None:
        """The card's appContext (a JSON string, or an object some servers unpack); None when it is absent or not
        one the cards wrote."""
        try:
            if isinstance(self.appContext, str):
                return AppContext.model_validate_json(self.appContext)
            return AppContext.model_validate(self.appContext) if self.appContext else None
        except ValidationError:
            return None


def scopes(configuration: SmartConfiguration, ehr_launch: bool) -> str:
    """`launch` with the EHR's launch (`launch/patient` standalone), and read access to the resource types the
    service reads, nothing more."""
    access = "rs" if configuration.speaks_v2_scopes else "read"
    return " ".join([("launch" if ehr_launch else "launch/patient"),
                     *(f"patient/{resource_type}.{access}" for resource_type in RESOURCE_TYPES_READ)])


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, code_challenge) with the S256 method (RFC 7636): 43 characters of verifier."""
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(configuration: SmartConfiguration, client_id: str, redirect_uri: str, iss: str, state: str,
                  challenge: str, launch: str | None) -> str:
    parameters = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                  "scope": scopes(configuration, ehr_launch=launch is not None), "state": state, "aud": iss,
                  "code_challenge": challenge, "code_challenge_method": "S256"}
    if launch is not None:
        parameters["launch"] = launch
    separator = "&" if "?" in configuration.authorization_endpoint else "?"
    return f"{configuration.authorization_endpoint}{separator}{urlencode(parameters)}"


async def discover(http: httpx.AsyncClient, iss: str) -> SmartConfiguration:
    """The EHR's SMART configuration; LaunchProblem (502) when it cannot be had or read."""
    url = f"{iss.rstrip('/')}/.well-known/smart-configuration"
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise LaunchProblem(502, "The EHR could not be reached",
                            f"Its SMART configuration did not come ({type(exc).__name__}).") from None
    if response.status_code != 200:
        raise LaunchProblem(502, "The EHR's SMART configuration is missing",
                            f"{url} answered HTTP {response.status_code}: this FHIR server does not offer SMART App "
                            f"Launch. Ask the IT team to enable it for the app (docs/deploy.md, \"Registering the "
                            f"pathway timeline\"); to try the app on a laptop, `make example-fhir` serves an example "
                            f"EHR that does.")
    try:
        configuration = SmartConfiguration.model_validate_json(response.content)
    except ValidationError:
        raise LaunchProblem(502, "The EHR's SMART configuration cannot be read",
                            f"{url} is not a SMART configuration with https authorization and token endpoints."
                            ) from None
    if "S256" not in configuration.code_challenge_methods_supported:
        raise LaunchProblem(502, "The EHR does not offer PKCE with S256",
                            "Its SMART configuration must list S256 in code_challenge_methods_supported (SMART App "
                            "Launch 2.0 requires it); the app does not launch without it.")
    if urlsplit(iss).scheme == "https" and "http" in {urlsplit(configuration.authorization_endpoint).scheme,
                                                      urlsplit(configuration.token_endpoint).scheme}:
        raise LaunchProblem(502, "The EHR's SMART configuration cannot be used",
                            "An https FHIR server named an http authorization or token endpoint: the app sends the "
                            "authorization code only over https.")
    return configuration


class DiscoveryCache:
    """Each FHIR server's SMART configuration, kept for `seconds` (every launch asked again before)."""

    def __init__(self, seconds: float = 300) -> None:
        self.seconds = seconds
        self._found: dict[str, tuple[float, SmartConfiguration]] = {}

    async def configuration(self, http: httpx.AsyncClient, iss: str) -> SmartConfiguration:
        now = time.monotonic()
        kept = self._found.get(iss)
        if kept and kept[0] > now:
            return kept[1]
        configuration = await discover(http, iss)
        self._found[iss] = (now + self.seconds, configuration)
        return configuration


async def exchange(http: httpx.AsyncClient, token_endpoint: str, code: str, verifier: str, client_id: str,
                   redirect_uri: str) -> TokenResponse:
    """The authorization code for an access token, as a public client: the PKCE verifier instead of a secret."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "client_id": client_id,
            "code_verifier": verifier}
    refused = LaunchProblem(403, "The EHR did not give the app access",
                            "Its authorization server did not answer the token request with a token: open the app "
                            "again from the patient's chart (the service's log names the cause for the IT team).")
    try:
        response = await http.post(token_endpoint, data=form, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        log.warning("the token request failed (%s)", type(exc).__name__)
        raise refused from None
    if response.status_code != 200:
        log.warning("the token request was answered HTTP %d", response.status_code)
        raise refused
    try:
        return TokenResponse.model_validate_json(response.content)
    except ValidationError:
        raise LaunchProblem(502, "The EHR's token response cannot be read",
                            "It holds no Bearer access token.") from None
