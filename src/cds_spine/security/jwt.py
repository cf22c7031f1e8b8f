"""Verification of the CDS client's JWT (CDS Hooks 2.0, "Trusting CDS Clients").

Each check is a function named after the rule it enforces. Any failure raises AuthenticationFailed,
whose reason goes to the log (with iss and jti, never the token) and never to the client.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from anyio import to_thread
from jwt.exceptions import InvalidTokenError, PyJWKError

from ..settings import EhrProfile
from .keys import KeySource
from .trusted_clients import ASYMMETRIC_ALGORITHMS, TrustedClient

REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]


class AuthenticationFailed(Exception):
    def __init__(self, reason: str, iss: str | None = None, jti: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.iss = iss
        self.jti = jti


class ReplayCache(Protocol):
    def first_use(self, iss: str, jti: str, keep_until: float) -> bool:
        """True the first time (iss, jti) is seen; it is then remembered until `keep_until` (epoch seconds)."""


@dataclass(frozen=True)
class VerifiedClient:
    iss: str
    jti: str
    tenant: str | None
    profile: EhrProfile | None
    fhir_servers: tuple[str, ...]
    """The FHIR servers trusted for this client: the only ones a call's fhirServer may name."""


def _normalized(url: str) -> str:
    return url.rstrip("/")


def header_typ_must_be_jwt(header: Mapping[str, Any]) -> None:
    if str(header.get("typ", "")).upper() != "JWT":
        raise AuthenticationFailed("typ is not JWT")


def alg_must_be_asymmetric_and_allowed(header: Mapping[str, Any], allowed: Sequence[str]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS or alg not in allowed:
        raise AuthenticationFailed(f"alg {alg!r} not allowed")
    return alg


def jku_must_be_the_trusted_one(header: Mapping[str, Any], client: TrustedClient) -> None:
    """A pinned JWKS decides alone (jku ignored); otherwise jku, if present, must be one of the jwks_urls."""
    jku = header.get("jku")
    if client.jwks_file is None and jku is not None and jku not in client.jwks_urls:
        raise AuthenticationFailed("jku is not among the issuer's configured jwks_url")


def aud_must_be_the_endpoint(claims: Mapping[str, Any], endpoint: str) -> None:
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if _normalized(endpoint) not in {_normalized(a) for a in audiences if isinstance(a, str)}:
        received = ", ".join(repr(a)[:200] for a in audiences[:5])
        raise AuthenticationFailed(f"aud is not this endpoint: expected {endpoint!r} (CDS_SPINE_PUBLIC_BASE_URL + path), "
                                   f"received {received}")


def lifetime_must_be_capped(claims: Mapping[str, Any], max_lifetime: int) -> None:
    if claims["exp"] - claims["iat"] > max_lifetime:
        raise AuthenticationFailed(f"token lifetime exceeds {max_lifetime} s")


def tenant_must_be_allowed(claims: Mapping[str, Any], client: TrustedClient) -> None:
    if client.tenants is not None and claims.get("tenant") not in client.tenants:
        raise AuthenticationFailed("tenant not allowed")


class Verifier:
    def __init__(self, sources: Sequence[KeySource], replay: ReplayCache, leeway: int, max_lifetime: int) -> None:
        self.sources = {source.issuer.client.iss: source for source in sources}
        self.replay = replay
        self.leeway = leeway
        self.max_lifetime = max_lifetime

    async def verify(self, token: str, endpoint: str) -> VerifiedClient:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except InvalidTokenError:
            raise AuthenticationFailed("malformed token") from None
        iss, jti = unverified.get("iss"), unverified.get("jti")
        try:
            return await self._verify(token, header, endpoint, iss, jti)
        except AuthenticationFailed as failure:
            failure.iss, failure.jti = str(iss), str(jti)
            raise

    async def _verify(self, token: str, header: dict[str, Any], endpoint: str, iss: Any, jti: Any) -> VerifiedClient:
        header_typ_must_be_jwt(header)
        source = self.sources.get(iss) if isinstance(iss, str) else None
        if source is None:
            raise AuthenticationFailed("iss is not a trusted client")
        client = source.issuer.client
        alg = alg_must_be_asymmetric_and_allowed(header, client.algorithms)
        jku_must_be_the_trusted_one(header, client)
        kid = header.get("kid")
        key = await source.key(kid) if isinstance(kid, str) else None
        if key is None:
            raise AuthenticationFailed("kid is not among the issuer's keys")
        try:
            claims = jwt.decode(token, key=key.key, algorithms=[alg], leeway=self.leeway,
                                options={"require": REQUIRED_CLAIMS, "verify_aud": False})
        except (InvalidTokenError, PyJWKError, TypeError, ValueError) as exc:
            raise AuthenticationFailed(type(exc).__name__) from None
        aud_must_be_the_endpoint(claims, endpoint)
        lifetime_must_be_capped(claims, self.max_lifetime)
        tenant_must_be_allowed(claims, client)
        if not await to_thread.run_sync(self.replay.first_use, client.iss, str(jti), claims["exp"] + self.leeway):
            raise AuthenticationFailed("jti already used (replay)")
        return VerifiedClient(client.iss, str(jti), claims.get("tenant"), client.profile, client.fhir_servers)
