"""Start-up policy: whether calls must carry a JWT, whom to trust, and refusing unsafe combinations."""
from __future__ import annotations

import logging

from ..settings import Settings
from .trusted_clients import TrustedIssuer, TrustError, load_trusted_clients, sandbox_client, trusted_issuer

log = logging.getLogger("cds_spine.security")


class ConfigurationError(Exception):
    """The settings would run the service unsafely or cannot work; the message says why (`problems`: each
    reason on its own)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def trust_summary(settings: Settings, issuers: list[TrustedIssuer] | None) -> list[str]:
    """Whom the service trusts, in words: the authentication mode and each issuer with where its keys come
    from and the algorithms it may sign with (check-config prints it; serve logs it at start-up)."""
    if issuers is None:
        mode = ("disabled (loopback only: calls are not checked for a JWT)" if not settings.auth_required()
                else "required, but no usable trusted client (see the errors)")
        return [f"authentication: {mode}"]
    lines = [f"authentication: required (a JWT from a trusted client, aud = {settings.public_base_url} + path)"]
    for issuer in issuers:
        client = issuer.client
        keys = f"keys from {', '.join(client.jwks_urls)}" if client.jwks_urls else f"pinned keys in {client.jwks_file}"
        tenants = f"; tenants {', '.join(client.tenants)}" if client.tenants else ""
        servers = (f"FHIR servers {', '.join(client.fhir_servers)}" if client.fhir_servers else
                   "no FHIR server (fhir_servers): its calls are answered from prefetch alone")
        lines.append(f"trusted issuer: {client.iss} ({keys}; algorithms {', '.join(client.algorithms)}{tenants}; "
                     f"{servers})")
    return lines


def trusted_issuers(settings: Settings) -> list[TrustedIssuer] | None:
    """The issuers to trust, or None when authentication is disabled (loopback only)."""
    if not settings.auth_required():
        if not settings.binds_loopback():
            raise ConfigurationError(f"CDS_SPINE_AUTH=disabled on {settings.host}, which is not a loopback address: "
                                     f"anyone who can reach it could read patient data. Configure trusted "
                                     f"clients and set CDS_SPINE_AUTH=required.")
        log.warning("AUTHENTICATION IS DISABLED: calls are not checked for a signed JWT. This is only allowed on "
                    "a loopback address (%s); never use it with real patient data.", settings.host)
        return None
    problems = []
    source = f"CDS_SPINE_TRUSTED_CLIENTS={settings.trusted_clients}"
    issuers = []
    try:
        clients = load_trusted_clients(settings.trusted_clients) if settings.trusted_clients else []
        if settings.sandbox:
            log.warning("SANDBOX PROFILE ON: tokens from https://sandbox.cds-hooks.org are trusted, and the "
                        "sandbox's private key is PUBLIC, so anyone can mint them. Testing only.")
            clients.append(sandbox_client(settings.sandbox_fhir_servers))
        for client in clients:
            source = f"CDS_SPINE_TRUSTED_CLIENTS={settings.trusted_clients}, entry {client.iss}"
            issuers.append(trusted_issuer(client))
    except TrustError as exc:
        problems.append(f"{source}: {exc}")
    if not issuers and not problems:
        problems.append("CDS_SPINE_AUTH is required but no client is trusted: set CDS_SPINE_TRUSTED_CLIENTS to a "
                        "YAML file of trusted EHRs (or CDS_SPINE_SANDBOX=true to test with the public sandbox).")
    if not settings.public_base_url:
        problems.append("CDS_SPINE_AUTH is required but CDS_SPINE_PUBLIC_BASE_URL is not set: a token's aud must "
                        "be checked against the URL the EHR calls, e.g. https://cds.example.org.")
    if problems:
        raise ConfigurationError(*problems)
    return issuers
