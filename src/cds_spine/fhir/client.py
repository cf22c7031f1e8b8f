"""Searches on the EHR's FHIR server, following `next` links up to a page cap.

The bearer token goes only to URLs under the request's fhirServer: a `next` link that points
anywhere else is refused, never followed.
"""
from __future__ import annotations

from urllib.parse import urljoin

import httpx

from .. import jsonio
from .bundles import Keep, kept_entries

FHIR_JSON = "application/fhir+json"


class FhirError(Exception):
    """The FHIR server could not give us the data; the message is safe to show (no token, no payload)."""


def _under(base: str, url: str) -> bool:
    return url.startswith(base.rstrip("/") + "/")


class FhirClient:
    def __init__(self, http: httpx.AsyncClient, page_cap: int) -> None:
        self.http = http
        self.page_cap = page_cap

    async def search(self, base: str, query: str, token: str | None, keep: Keep) -> list[dict]:
        """The kept resources of every page of a search."""
        return await self._pages(base, urljoin(base.rstrip("/") + "/", query), token, keep)

    async def follow(self, base: str, next_url: str, token: str | None, keep: Keep) -> list[dict]:
        """The kept resources of the pages after one the EHR already sent in prefetch."""
        return await self._pages(base, urljoin(base.rstrip("/") + "/", next_url), token, keep)

    async def _pages(self, base: str, url: str, token: str | None, keep: Keep) -> list[dict]:
        resources: list[dict] = []
        pages_left = self.page_cap
        while url:
            if pages_left == 0:
                raise FhirError(f"more than {self.page_cap} pages of results (CDS_SPINE_FHIR_PAGE_CAP)")
            if not _under(base, url):
                raise FhirError("a next link points outside fhirServer; it was not followed")
            bundle = await self._get(url, token)
            kept, outcomes = kept_entries(bundle, keep)
            if any(_is_error(outcome) for outcome in outcomes):
                raise FhirError("FHIR server returned an OperationOutcome with an error")
            resources += kept
            url = _next_link(bundle, base)
            pages_left -= 1
        return resources

    async def _get(self, url: str, token: str | None) -> dict:
        headers = {"Accept": FHIR_JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self.http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise FhirError(f"FHIR server unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise FhirError(f"FHIR server answered HTTP {response.status_code}")
        try:
            body = jsonio.parse(response.content)
        except jsonio.JSONDecodeError:
            raise FhirError("FHIR server answered with invalid JSON") from None
        if body.__class__ not in jsonio.OBJECTS or body.get("resourceType") != "Bundle":
            raise FhirError("FHIR server answered with something other than a Bundle")
        return body


def _is_error(outcome: dict) -> bool:
    issues = outcome.get("issue")
    return any(isinstance(issue, dict) and issue.get("severity") in ("error", "fatal")
               for issue in (issues if isinstance(issues, list) else []))


def _next_link(bundle, base: str) -> str | None:
    links = bundle.get("link")
    for link in links if links.__class__ in jsonio.ARRAYS else ():
        if link.__class__ in jsonio.OBJECTS and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return urljoin(base.rstrip("/") + "/", link["url"])
    return None
