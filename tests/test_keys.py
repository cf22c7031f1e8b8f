"""The JWKS cache of a jwks_url issuer, and the replay cache, against a controlled clock."""
from __future__ import annotations

import asyncio

import httpx
from tokens import SigningKey, jwks

from cds_spine.audit.db import migrate, open_engine
from cds_spine.audit.store import SqlReplayCache
from cds_spine.security.keys import KeySource
from cds_spine.security.trusted_clients import TrustedClient, TrustedIssuer

URL = "https://ehr.example.org/jwks.json"
OLD, NEW = SigningKey.ec("old"), SigningKey.ec("new")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unknown_kid_refetches_at_most_once_a_minute_and_ttl_expires(httpx_mock):
    httpx_mock.add_response(url=URL, json=jwks(OLD))
    httpx_mock.add_response(url=URL, json=jwks(OLD, NEW))
    httpx_mock.add_response(url=URL, json=jwks(NEW))
    clock = Clock()

    async def scenario() -> list:
        async with httpx.AsyncClient() as http:
            source = KeySource(TrustedIssuer(TrustedClient(iss="https://ehr.example.org", jwks_url=URL), None),
                               http, ttl=3600, clock=clock)
            found = [await source.key("old"), await source.key("new")]  # fetch 1; "new" unknown, too soon
            clock.now += 59
            found.append(await source.key("new"))  # still too soon
            clock.now += 1
            found.append(await source.key("new"))  # fetch 2 finds it
            found.append(await source.key("old"))  # cached
            clock.now += 3601
            found.append(await source.key("old"))  # TTL over: fetch 3, rotated away
            return found

    found = asyncio.run(scenario())
    assert [key.key_id if key else None for key in found] == ["old", None, None, "new", "old", None]
    assert len(httpx_mock.get_requests()) == 3


def test_replay_cache_is_shared_through_the_database_and_forgets_expired_entries(database_url):
    clock = Clock()
    engine = open_engine(database_url)
    migrate(engine)
    first, second = SqlReplayCache(engine, clock), SqlReplayCache(engine, clock)  # two workers
    assert first.first_use("iss", "j1", keep_until=clock.now + 360)
    assert not second.first_use("iss", "j1", keep_until=clock.now + 360)
    assert second.first_use("other-iss", "j1", keep_until=clock.now + 360)
    clock.now += 361
    second._uses = 0  # the next use purges expired entries
    assert second.first_use("iss", "j2", keep_until=clock.now + 360)
    assert first.first_use("iss", "j1", keep_until=clock.now + 360)
    engine.dispose()
