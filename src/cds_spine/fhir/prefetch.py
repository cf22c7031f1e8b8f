"""Prefetch with the CDS Hooks 2.0 semantics, and the FHIR server as the fallback.

For each key the service needs:
- key absent: the EHR did not supply it -> query the FHIR server;
- `null`, or a Bundle without entries: no data -> do not re-query;
- an OperationOutcome, or a Bundle holding one: the EHR's query failed -> query the FHIR server;
- a Bundle with a `next` link: follow it.
Medications named by reference (`medicationReference`) that are neither contained nor in the Bundles
(the templates `_include` them) are fetched too. So are the Encounters of diagnoses recorded without a
date of their own (the conditions template `_include`s them), when the FHIR server can be asked: an
Encounter that cannot be had leaves that diagnosis's date unknown, never a reason to refuse the call.
Data a decision needs that cannot be obtained raises DataUnavailableError (the service answers 412). The
Observations (scores and results) are not needed for a decision: their rules only add to what the others say
and never speak on missing data, so Observations that cannot be had are read as none (and logged).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..errors import DataUnavailableError
from ..jsonio import ARRAYS, OBJECTS, materialize
from ..pathway.knowledge import Knowledge
from .bundles import Keep, kept_entries
from .client import FhirClient, FhirError
from .references import unresolved_encounters, unresolved_medications

log = logging.getLogger(__name__)

PATIENT_TOKEN = "{{context.patientId}}"
# Prefetch key -> FHIR query template. Discovery advertises these; the fallback runs the same queries.
PATIENT_QUERY = {"patient": f"Patient/{PATIENT_TOKEN}"}
RECORD_QUERIES = {
    "conditions": f"Condition?patient={PATIENT_TOKEN}&_include=Condition:encounter",
    "procedures": f"Procedure?patient={PATIENT_TOKEN}",
    "medicationStatements": f"MedicationStatement?patient={PATIENT_TOKEN}&_include=MedicationStatement:medication",
    "medicationRequests": f"MedicationRequest?patient={PATIENT_TOKEN}&_include=MedicationRequest:medication",
    "serviceRequests": f"ServiceRequest?patient={PATIENT_TOKEN}",
}
RESOURCE_TYPES_READ = tuple(sorted({query.split("?", 1)[0] for query in RECORD_QUERIES.values()}
                                   | {"Observation", "DiagnosticReport", "ImagingStudy", "Encounter", "Medication"}))
"""Every resource type the service reads from a FHIR server: the record's queries, the Observations, imaging
reports and studies, the Encounters of undated diagnoses and the Medications drugs are named by (a SMART app asks for exactly
these)."""
CONDITION_KEYS = ("conditions",)
RECORD_KEYS = tuple(RECORD_QUERIES)
OBSERVATIONS_KEY = "observations"
IMAGING_KEY = "imagingReports"
STUDIES_KEY = "imagingStudies"


def _coded_query(resource_type: str, codes: Iterable[tuple[str, str]], parameter: str = "code") -> str:
    return (f"{resource_type}?patient={PATIENT_TOKEN}"
            f"&{parameter}={','.join(f'{system}|{code}' for system, code in codes)}")


def optional_queries(knowledge: Knowledge) -> dict[str, str]:
    """The keys a decision reads but never needs (read as none when they cannot be had): the Observations the
    rules read (their value sets' codes, not every vital sign), the reports of spine imaging, and the MRI and CT
    studies (by modality: a study's body site is on its series, which no search parameter reads)."""
    return {OBSERVATIONS_KEY: _coded_query("Observation", knowledge.observation_codes()),
            IMAGING_KEY: _coded_query("DiagnosticReport", knowledge.imaging_codes()),
            STUDIES_KEY: _coded_query("ImagingStudy", knowledge.imaging_modalities(), "modality")}


@dataclass(frozen=True)
class FhirAccess:
    """How this call may reach the EHR's FHIR server: its base URL and bearer token (never logged)."""

    server: str | None
    token: str | None
    allow_unauthenticated: bool
    trusted: bool = True
    """Whether the server is among those trusted for the caller (no request, and no token, goes anywhere else)."""

    def why_not(self) -> str | None:
        """Why the FHIR server cannot be queried, or None when it can."""
        if not self.server:
            return "the request has no fhirServer"
        if not self.trusted:
            return ("the request's fhirServer is not among the FHIR servers trusted for the calling EHR (fhir_servers in its "
                    "CDS_SPINE_TRUSTED_CLIENTS entry; CDS_SPINE_SANDBOX_FHIR_SERVERS for the sandbox)")
        if not self.token and not self.allow_unauthenticated:
            return ("the request has no fhirAuthorization "
                    "(unauthenticated FHIR access is off: CDS_SPINE_ALLOW_UNAUTHENTICATED_FHIR)")
        return None


@dataclass(frozen=True)
class PrefetchValue:
    supplied: bool
    resources: tuple[dict[str, Any], ...] = ()
    next_url: str | None = None


def _is_outcome(value: Any) -> bool:
    return value.__class__ in OBJECTS and value.get("resourceType") == "OperationOutcome"


def read_prefetch_value(value: Any, keep: Keep) -> PrefetchValue:
    """What one prefetch value tells us (the caller handles an absent key)."""
    if value is None:
        return PrefetchValue(supplied=True)
    if value.__class__ not in OBJECTS or not isinstance(value.get("resourceType"), str) or _is_outcome(value):
        return PrefetchValue(supplied=False)
    if value.get("resourceType") != "Bundle":
        return PrefetchValue(supplied=True, resources=(materialize(value),) if keep(value) else ())
    resources, outcomes = kept_entries(value, keep)
    if outcomes:
        return PrefetchValue(supplied=False)
    links = value.get("link")
    next_url = next((link.get("url") for link in links if link.__class__ in OBJECTS
                     and link.get("relation") == "next" and isinstance(link.get("url"), str)),
                    None) if links.__class__ in ARRAYS else None
    return PrefetchValue(supplied=True, resources=tuple(resources), next_url=next_url)


def resolve_query(template: str, patient_id: str) -> str:
    return template.replace(PATIENT_TOKEN, quote(patient_id, safe=""))


def _value_of(prefetch: Mapping[str, Any], key: str, keep: Keep) -> PrefetchValue:
    return read_prefetch_value(prefetch[key], keep) if key in prefetch else PrefetchValue(supplied=False)


def _needs_server(value: PrefetchValue) -> bool:
    return not value.supplied or value.next_url is not None


async def _obtain_key(key: str, value: PrefetchValue, patient_id: str, access: FhirAccess,
                      client: FhirClient, keep: Keep) -> list[dict[str, Any]]:
    if not _needs_server(value):
        return list(value.resources)
    problem = access.why_not()
    if problem:
        situation = "prefetch has more pages (a next link) that cannot be fetched:" if value.supplied else \
            "not in prefetch and"
        raise DataUnavailableError(key, "no-fhir-access", f"{situation} {problem}")
    assert access.server is not None  # why_not() said it can be queried
    try:
        if value.supplied:
            assert value.next_url is not None  # _needs_server
            return list(value.resources) + await client.follow(access.server, value.next_url, access.token, keep)
        return await client.search(access.server, resolve_query(RECORD_QUERIES[key], patient_id), access.token,
                                   keep)
    except FhirError as exc:
        raise _not_provided(key, exc) from None


SERVER_FAULT = "the FHIR server did not provide it (the service's log names the cause)"


def _not_provided(key: str, exc: FhirError) -> DataUnavailableError:
    """One text for every fault of the FHIR server, so that an answer never tells a closed port from an open
    one; the cause goes to the log."""
    log.warning("FHIR server did not provide %s (%s): %s", key, exc.kind, exc)
    return DataUnavailableError(key, exc.kind, SERVER_FAULT)


@dataclass(frozen=True)
class Obtained:
    resources: tuple[dict[str, Any], ...]
    """Only the kept (relevant) resources."""
    fetched_keys: tuple[str, ...]
    """Keys that needed the FHIR server rather than prefetch alone (for the audit)."""


async def _medications(found: Mapping[str, list[dict[str, Any]]], access: FhirAccess, client: FhirClient,
                       keep: Keep) -> list[dict[str, Any]]:
    """The Medications the found resources name by reference but do not carry."""
    missing = unresolved_medications(resource for resources in found.values() for resource in resources)
    if not missing:
        return []
    key = next(key for key, resources in found.items() if unresolved_medications(resources))
    problem = access.why_not()
    if problem:
        raise DataUnavailableError(key, "no-fhir-access",
                              f"Medication resources named by reference are not in prefetch and {problem}")
    assert access.server is not None  # why_not() said it can be queried
    try:
        return await client.search(access.server, f"Medication?_id={quote(','.join(missing), safe=',')}",
                                   access.token, keep)
    except FhirError as exc:
        raise _not_provided(key, exc) from None


async def _encounters(resources: Sequence[dict[str, Any]], access: FhirAccess, client: FhirClient, keep: Keep,
                      seconds_left: float) -> list[dict[str, Any]]:
    """The Encounters of undated diagnoses that the resources lack, when the FHIR server can give them in the
    time left; else none (those diagnoses are read with their date unknown)."""
    missing = unresolved_encounters(resources)
    if not missing or access.why_not() or access.server is None or seconds_left <= 0:
        return []
    try:
        async with asyncio.timeout(seconds_left):
            return await client.search(access.server, f"Encounter?_id={quote(','.join(missing), safe=',')}",
                                       access.token, keep)
    except (FhirError, TimeoutError) as exc:
        log.info("encounters of %d undated diagnoses could not be fetched (%s): their dates are read as unknown",
                 len(missing), exc.__class__.__name__)
        return []


async def _optional(key: str, query: str, value: PrefetchValue, patient_id: str, access: FhirAccess,
                    client: FhirClient, keep: Keep, seconds_left: float) -> tuple[list[dict[str, Any]], bool]:
    """What prefetch holds under `key` (`value`), and what the FHIR server adds in the time left when prefetch
    lacks it; whether the server was asked."""
    if not _needs_server(value) or access.why_not() or access.server is None or seconds_left <= 0:
        return list(value.resources), False
    try:
        async with asyncio.timeout(seconds_left):
            if value.next_url is not None:
                return list(value.resources) + await client.follow(access.server, value.next_url, access.token,
                                                                   keep), True
            return await client.search(access.server, resolve_query(query, patient_id), access.token, keep), True
    except (FhirError, TimeoutError) as exc:
        log.info("%s could not be fetched (%s): read as none", key, exc.__class__.__name__)
        return list(value.resources), True


@dataclass(frozen=True)
class PrefetchRead:
    """What prefetch holds under the keys a step of a call reads, read once (the relevance pass, where the call's CPU
    work runs: cdshooks/offload.py): most calls need nothing more (`complete`); `obtain` completes the others from
    the FHIR server without reading prefetch again."""

    values: Mapping[str, PrefetchValue]
    optional: Mapping[str, tuple[str, PrefetchValue]]
    """Each optional key read: its query, and what prefetch holds under it."""

    def complete(self) -> Obtained | None:
        """The kept resources, when nothing is for the FHIR server to complete (a missing key, a next page, a
        Medication or an Encounter named by reference). None: `obtain` must complete them."""
        values = (*self.values.values(), *(value for _, value in self.optional.values()))
        if any(_needs_server(value) for value in values):
            return None
        resources = tuple(resource for value in values for resource in value.resources)
        if unresolved_medications(resources) or unresolved_encounters(resources):
            return None
        return Obtained(resources, ())


def read_prefetch(keys: Sequence[str], prefetch: Mapping[str, Any] | None, keep: Keep,
                  optional: Mapping[str, str] | None = None) -> PrefetchRead:
    """What prefetch holds under `keys` and the `optional` keys (key -> query), only the kept resources."""
    supplied = prefetch or {}
    return PrefetchRead({key: _value_of(supplied, key, keep) for key in keys},
                        {key: (query, _value_of(supplied, key, keep)) for key, query in (optional or {}).items()})


async def obtain(read: PrefetchRead, patient_id: str, access: FhirAccess, client: FhirClient, budget_seconds: float,
                 keep: Keep) -> Obtained:
    """The kept resources `read` from prefetch, what prefetch lacks fetched concurrently, within one time budget;
    those under the optional keys alongside, none when they cannot be had within the budget."""
    values = read.values
    fetched = tuple(key for key, value in values.items() if _needs_server(value))
    started = time.monotonic()
    extras = {key: asyncio.ensure_future(_optional(key, query, value, patient_id, access, client, keep, budget_seconds))
              for key, (query, value) in read.optional.items()}
    # The budget bounds waiting for the FHIR server, never reading what prefetch holds: a call whose data all came
    # in prefetch is answered however long a busy machine takes to schedule it.
    needs_server = bool(fetched) or bool(unresolved_medications(
        resource for value in values.values() for resource in value.resources))
    try:
        async with asyncio.timeout(budget_seconds if needs_server else None):
            results = await asyncio.gather(
                *(_obtain_key(key, value, patient_id, access, client, keep) for key, value in values.items()))
            found = dict(zip(values, results, strict=True))
            medications = await _medications(found, access, client, keep)
    except BaseException as exc:
        for task in extras.values():
            task.cancel()
        if isinstance(exc, TimeoutError):
            raise _not_provided(",".join(fetched), FhirError(
                "timeout", f"the FHIR server did not answer within {budget_seconds:g} s")) from None
        raise
    if medications:
        fetched += ("Medication",)
    resources = tuple(resource for found in results for resource in found) + tuple(medications)
    for key, task in extras.items():
        try:
            found_optional, asked = await asyncio.wait_for(task, max(0.0, budget_seconds - (time.monotonic() - started)))
        except TimeoutError:
            log.info("%s did not come within the budget: read as none", key)
            found_optional, asked = [], True
        resources += tuple(found_optional)
        fetched += (key,) if asked else ()
    encounters = await _encounters(resources, access, client, keep, budget_seconds - (time.monotonic() - started))
    if encounters:
        fetched += ("Encounter",)
    return Obtained(resources + tuple(encounters), fetched)
