"""Errors as FHIR OperationOutcomes, one exception type per kind of failure (CDS Hooks and audit alike)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .jsonio import JsonResponse
from .logs import note_reason


@dataclass(frozen=True)
class Issue:
    code: str  # http://hl7.org/fhir/issue-type
    diagnostics: str
    expression: str | None = None


class ApiError(Exception):
    status = 400
    headers: dict[str, str] = {}

    def __init__(self, *issues: Issue) -> None:
        super().__init__("; ".join(issue.diagnostics for issue in issues))
        self.issues = issues


class InvalidRequest(ApiError):
    """400: the body is not JSON, or a field is missing, of the wrong type, or inconsistent."""


class Unauthorized(ApiError):
    """401: no valid JWT. The body never says which check failed; the log does."""

    status = 401
    headers = {"WWW-Authenticate": "Bearer"}

    def __init__(self) -> None:
        super().__init__(Issue("login", "authentication required"))


class ServiceNotFound(ApiError):
    status = 404


class StoreUnavailable(ApiError):
    """503: the audit store could not record the call, and advice without a record is not given."""

    status = 503

    def __init__(self) -> None:
        super().__init__(Issue("transient", "the audit store is unavailable, so no advice was given; try again"))


class RequestTimeout(ApiError):
    """408: the client took longer than the body timeout to send its body."""

    status = 408
    headers = {"Connection": "close"}


class ClientGone(ApiError):
    """The client closed the connection before sending its whole body: nobody is left to answer
    (499, as proxies log it; the status never reaches anyone)."""

    status = 499

    def __init__(self) -> None:
        super().__init__(Issue("incomplete", "the client disconnected before sending the whole body"))


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class DataUnavailableError(ApiError):
    """412: data the decision needs could be obtained neither from prefetch nor from fhirServer; `key` names
    the prefetch key, `kind` the fault in a word (a metrics label)."""

    status = 412

    def __init__(self, key: str, kind: str, reason: str) -> None:
        super().__init__(Issue("incomplete", f"patient data needed for the decision could not be obtained: "
                                             f"{key}: {reason}", f"prefetch.{key}"))
        self.key = key
        self.kind = kind


def operation_outcome(*issues: Issue) -> dict[str, Any]:
    def wire(issue: Issue) -> dict[str, Any]:
        item: dict[str, Any] = {"severity": "error", "code": issue.code, "diagnostics": issue.diagnostics}
        if issue.expression:
            item["expression"] = [issue.expression]
        return item

    return {"resourceType": "OperationOutcome", "issue": [wire(issue) for issue in issues]}


def outcome_response(status: int, *issues: Issue, headers: dict[str, str] | None = None) -> JsonResponse:
    note_reason("; ".join(issue.diagnostics for issue in issues), issues[0].code if issues else None)
    return JsonResponse(operation_outcome(*issues), status_code=status, headers=headers)


def error_response(error: ApiError) -> JsonResponse:
    return outcome_response(error.status, *error.issues, headers=error.headers)
