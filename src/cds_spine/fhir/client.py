"""Searches on the EHR's FHIR server, following `next` links up to a page cap.

The bearer token goes only to URLs under the request's fhirServer (compared after normalising,
fhir/urls.py): a `next` link that points anywhere else is refused, never followed, and redirects
are never followed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx

from .. import jsonio
from ..metrics import FHIR_LATENCY, FHIR_REQUESTS
from .bundles import Keep, kept_entries
from .urls import UnsafeUrl, is_under, normalized

FHIR_JSON = "application/fhir+json"


class FhirError(Exception):
    """The FHIR server could not give us the data; the message is safe to show (no token, no payload);
    `kind` names the fault in a word (a metrics label)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SearchLimits:
    """CDS_SPINE_FHIR_PAGE_CAP, _FHIR_MAX_ENTRIES and _FHIR_MAX_RESPONSE_BYTES."""

    page_cap: int
    max_entries: int
    max_response_bytes: int


class FhirClient:
    """Bounded: at most `page_cap` pages and `max_entries` entries per search, and `max_response_bytes` per
    page (decompressed); past a bound the data is incomplete (412)."""

    def __init__(self, http: httpx.AsyncClient, limits: SearchLimits) -> None:
        self.http = http
        self.page_cap = limits.page_cap
        self.max_entries = limits.max_entries
        self.max_response_bytes = limits.max_response_bytes

    async def search(self, base: str, query: str, token: str | None, keep: Keep) -> list[dict[str, Any]]:
        """The kept resources of every page of a search."""
        return await self._pages(base, urljoin(base.rstrip("/") + "/", query), token, keep)

    async def follow(self, base: str, next_url: str, token: str | None, keep: Keep) -> list[dict[str, Any]]:
        """The kept resources of the pages after one the EHR already sent in prefetch."""
        return await self._pages(base, urljoin(base.rstrip("/") + "/", next_url), token, keep)

    async def _pages(self, base: str, url: str | None, token: str | None, keep: Keep) -> list[dict[str, Any]]:
        resources: list[dict[str, Any]] = []
        pages_left = self.page_cap
        entries = 0
        while url:
            if pages_left == 0:
                raise FhirError("page-cap", f"more than {self.page_cap} pages of results (CDS_SPINE_FHIR_PAGE_CAP)")
            bundle = await self._get(_inside(base, url), token)
            entries += _entry_count(bundle)
            if entries > self.max_entries:
                raise FhirError("entry-cap", f"more than {self.max_entries} entries in one search (CDS_SPINE_FHIR_MAX_ENTRIES)")
            kept, outcomes = kept_entries(bundle, keep)
            if any(_is_error(outcome) for outcome in outcomes):
                raise FhirError("operation-outcome", "FHIR server returned an OperationOutcome with an error")
            resources += kept
            url = _next_link(bundle, base)
            pages_left -= 1
        return resources

    async def _get(self, url: str, token: str | None) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            bundle = await self._fetch(url, token)
        except FhirError as error:
            FHIR_REQUESTS.labels(error.kind).inc()
            raise
        finally:
            FHIR_LATENCY.observe(time.perf_counter() - started)
        FHIR_REQUESTS.labels("ok").inc()
        return bundle

    async def _fetch(self, url: str, token: str | None) -> dict[str, Any]:
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                if response.status_code in (401, 403):
                    raise FhirError("refused", f"FHIR server refused the access token (HTTP {response.status_code})")
                if response.status_code != 200:
                    raise FhirError("http-status", f"FHIR server answered HTTP {response.status_code}")
                content = await self._content(response)
        except httpx.HTTPError as exc:
            raise FhirError("unreachable", f"FHIR server unreachable ({type(exc).__name__})") from None
        # A NUL is not allowed in a FHIR string and cannot be stored in PostgreSQL: read it as U+FFFD.
        # (In an escaped backslash, `\\u0000`, the replacement only changes literal text.)
        content = content.replace(b"\\u0000", b"\\ufffd")
        try:
            body = jsonio.parse(content)
        except jsonio.JSONDecodeError:
            raise FhirError("invalid-json", "FHIR server answered with invalid JSON") from None
        if body.__class__ not in jsonio.OBJECTS or body.get("resourceType") != "Bundle":
            raise FhirError("not-a-bundle", "FHIR server answered with something other than a Bundle")
        return body


    async def _content(self, response: httpx.Response) -> bytes:
        too_large = FhirError("too-large", f"a FHIR response larger than {self.max_response_bytes} bytes "
                              f"(CDS_SPINE_FHIR_MAX_RESPONSE_BYTES)")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise too_large
        content = bytearray()
        async for chunk in response.aiter_bytes():
            content += chunk
            if len(content) > self.max_response_bytes:
                raise too_large
        return bytes(content)


def _entry_count(bundle: Any) -> int:
    entries = bundle.get("entry")
    return len(entries) if entries.__class__ in jsonio.ARRAYS else 0


def _inside(base: str, url: str) -> str:
    """The normalised URL, if it is under fhirServer; FhirError otherwise (the token is not sent)."""
    try:
        if is_under(base, url):
            return normalized(url)
    except UnsafeUrl:
        pass
    raise FhirError("outside-fhir-server", "a URL outside fhirServer (a next link or query); it was not requested")


def _is_error(outcome: dict[str, Any]) -> bool:
    issues = outcome.get("issue")
    return any(isinstance(issue, dict) and issue.get("severity") in ("error", "fatal")
               for issue in (issues if isinstance(issues, list) else []))


def _next_link(bundle: Any, base: str) -> str | None:
    links = bundle.get("link")
    link: Any
    for link in links if links.__class__ in jsonio.ARRAYS else ():
        if link.__class__ in jsonio.OBJECTS and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return urljoin(base.rstrip("/") + "/", link["url"])
    return None
