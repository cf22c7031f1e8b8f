"""Where an issuer's public keys come from: a pinned JWKS, or its jwks_url (cached, rate-limited)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

from .trusted_clients import TrustedIssuer

log = logging.getLogger(__name__)
REFETCH_INTERVAL_SECONDS = 60


class KeySource:
    """Keys of one trusted issuer. For a jwks_url: cached for `ttl` seconds, and re-fetched when a
    `kid` is unknown at most once a minute. No other URL is ever fetched."""

    def __init__(self, issuer: TrustedIssuer, http: httpx.AsyncClient, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self.http = http
        self.ttl = ttl
        self.clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._by_url: dict[str, dict[str, PyJWK]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> PyJWK | None:
        if self.issuer.pinned_keys is not None:
            return self.issuer.pinned_keys.get(kid)
        async with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at > self.ttl
            may_refetch = self._fetched_at is None or now - self._fetched_at >= REFETCH_INTERVAL_SECONDS
            if stale or (kid not in self._keys and may_refetch):
                await self._fetch(now)
            return self._keys.get(kid)

    async def _fetch(self, now: float) -> None:
        """Every jwks_url of the issuer; a set that cannot be fetched keeps its cached keys."""
        self._fetched_at = now
        for url in self.issuer.client.jwks_urls:
            try:
                response = await self.http.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                keys = PyJWKSet.from_dict(response.json()).keys
            except (httpx.HTTPError, ValueError, PyJWKError, PyJWKSetError) as exc:
                log.warning("could not fetch the JWKS of iss=%s at %s (%s); keeping its cached keys",
                            self.issuer.client.iss, url, type(exc).__name__)
                continue
            self._by_url[url] = {key.key_id: key for key in keys if key.key_id}
        self._keys = {kid: key for found in self._by_url.values() for kid, key in found.items()}
