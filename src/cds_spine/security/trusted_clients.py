"""Trusted clients (EHRs), read from the YAML file named by CDS_SPINE_TRUSTED_CLIENTS.

    - iss: https://ehr.example.org
      jwks_url: https://ehr.example.org/.well-known/jwks.json   # fetched over HTTPS, cached (or a list of URLs)
      tenants: [hospital-a]                                      # optional: `tenant` must be one of these
      algorithms: [ES384]                                        # optional: narrows the allowlist
    - iss: https://other-ehr.example.org
      jwks_file: other-ehr-jwks.json                             # pinned keys, relative to this file
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from ..settings import EhrProfile, HttpsUrls
from ..yamlio import load_yaml

ASYMMETRIC_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"


class TrustError(Exception):
    """The trusted-clients configuration is invalid; the message names the file and entry."""


class TrustedClient(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(min_length=1)
    jwks_url: str | tuple[str, ...] | None = None
    """One URL, or several (an EHR that rotates keys between sets): a token's `jku` must be one of them."""
    jwks_file: Path | None = None
    tenants: tuple[str, ...] | None = None
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    profile: EhrProfile | None = None
    """How this EHR's cards are shaped; None: CDS_SPINE_EHR_PROFILE."""
    fhir_servers: HttpsUrls = ()
    """The EHR's FHIR base URLs: the only ones its calls' fhirServer may name (the service sends the access
    token nowhere else), and those the pathway timeline (a SMART app) may be launched from."""

    @field_validator("jwks_url")
    @classmethod
    def https_only(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        urls = (value,) if isinstance(value, str) else value or ()
        if isinstance(value, tuple) and not value:
            raise ValueError("jwks_url: give at least one URL")
        if any(not url.startswith("https://") for url in urls):
            raise ValueError("jwks_url must be an https:// URL")
        return value

    @property
    def jwks_urls(self) -> tuple[str, ...]:
        """Every JWK Set URL of the client (none for pinned keys)."""
        return (self.jwks_url,) if isinstance(self.jwks_url, str) else self.jwks_url or ()

    @field_validator("algorithms")
    @classmethod
    def asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unsafe = set(value) - set(ASYMMETRIC_ALGORITHMS)
        if unsafe or not value:
            raise ValueError(f"algorithms must be among {', '.join(ASYMMETRIC_ALGORITHMS)}; not {sorted(unsafe)}")
        return value

    @model_validator(mode="after")
    def one_key_source(self) -> TrustedClient:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of jwks_url and jwks_file")
        return self


@dataclass(frozen=True)
class TrustedIssuer:
    """A trusted client with its pinned keys loaded (None when its keys come from jwks_url)."""

    client: TrustedClient
    pinned_keys: dict[str, PyJWK] | None


def read_jwks(path: Path) -> dict[str, PyJWK]:
    """A pinned JWKS file: kid -> key."""
    try:
        keys = PyJWKSet.from_dict(json.loads(path.read_text(encoding="utf-8"))).keys
    except (OSError, ValueError, PyJWKError, PyJWKSetError) as exc:
        raise TrustError(f"{path}: not a usable JWKS ({exc})") from None
    if any(not key.key_id for key in keys):
        raise TrustError(f"{path}: every key needs a kid")
    return {key.key_id: key for key in keys if key.key_id}


def trusted_issuer(client: TrustedClient) -> TrustedIssuer:
    return TrustedIssuer(client, read_jwks(client.jwks_file) if client.jwks_file else None)


def load_trusted_clients(path: Path) -> list[TrustedClient]:
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TrustError(f"{path}: cannot read: {exc}") from None
    try:
        clients = TypeAdapter(list[TrustedClient]).validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(f"entry {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise TrustError(f"{path}: {problems}") from None
    issuers = [client.iss for client in clients]
    if len(set(issuers)) != len(issuers):
        raise TrustError(f"{path}: an issuer is listed twice")
    return [client.model_copy(update={"jwks_file": path.parent / client.jwks_file}) if client.jwks_file else client
            for client in clients]


def sandbox_client(fhir_servers: tuple[str, ...]) -> TrustedClient:
    """The public CDS Hooks sandbox, with its published JWKS pinned (shipped in this package), and the FHIR
    servers its calls may name (CDS_SPINE_SANDBOX_FHIR_SERVERS)."""
    path = Path(str(resources.files("cds_spine.security") / "sandbox-jwks.json"))
    return TrustedClient(iss=SANDBOX_ISSUER, jwks_file=path, algorithms=("ES384",), fhir_servers=fhir_servers)
