"""Start-up policy: whether calls must carry a JWT, whom to trust, and refusing unsafe combinations."""
from __future__ import annotations

import logging

from ..settings import Settings
from .trusted_clients import TrustError, TrustedIssuer, load_trusted_clients, sandbox_client, trusted_issuer

log = logging.getLogger("cds_spine.security")


class ConfigurationError(Exception):
    """The settings would run the service unsafely or cannot work; the message says why."""


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
    source = f"CDS_SPINE_TRUSTED_CLIENTS={settings.trusted_clients}"
    try:
        clients = load_trusted_clients(settings.trusted_clients) if settings.trusted_clients else []
        if settings.sandbox:
            log.warning("SANDBOX PROFILE ON: tokens from https://sandbox.cds-hooks.org are trusted, and the "
                        "sandbox's private key is PUBLIC, so anyone can mint them. Testing only.")
            clients.append(sandbox_client())
        issuers = []
        for client in clients:
            source = f"CDS_SPINE_TRUSTED_CLIENTS={settings.trusted_clients}, entry {client.iss}"
            issuers.append(trusted_issuer(client))
    except TrustError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None
    if not issuers:
        raise ConfigurationError("CDS_SPINE_AUTH is required but no client is trusted: set "
                                 "CDS_SPINE_TRUSTED_CLIENTS to a YAML file of trusted EHRs (or CDS_SPINE_SANDBOX=true "
                                 "to test with the public sandbox).")
    if not settings.public_base_url:
        raise ConfigurationError("CDS_SPINE_AUTH is required but CDS_SPINE_PUBLIC_BASE_URL is not set: a token's "
                                 "aud must be checked against the URL the EHR calls, e.g. https://cds.example.org.")
    return issuers
