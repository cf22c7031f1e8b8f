"""Pydantic models of the CDS Hooks 2.0 wire format.

Requests are validated once at the edge. Responses are built from these models, whose validators
carry the spec's MUSTs (summary < 140 characters, selectionBehavior with suggestions, display on
override reasons, delete by resourceId, appContext only on smart links, no empty arrays), so an
invalid card cannot leave the service.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ..fhir.urls import UnsafeUrl, normalized

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")


def _absolute_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value


def _fhir_id(value: str) -> str:
    if not FHIR_ID.fullmatch(value):
        raise ValueError("must be a FHIR id (letters, digits, '-' and '.', at most 64)")
    return value


def _fhir_base(value: str) -> str:
    """An absolute http(s) base URL without credentials, query or fragment (the token is sent under it)."""
    try:
        normalized(value)
    except UnsafeUrl as exc:
        raise ValueError(f"must be a FHIR base URL: {exc}") from None
    if urlsplit(value).query or "#" in value:
        raise ValueError("must be a FHIR base URL: without a query or a fragment")
    return value


def _header_token(value: str) -> str:
    if not HEADER_TOKEN.fullmatch(value):
        raise ValueError("must be printable ASCII without spaces (it is sent in an HTTP header)")
    return value


AbsoluteUrl = Annotated[str, AfterValidator(_absolute_url)]
NonEmpty = Annotated[str, Field(min_length=1)]
FhirId = Annotated[str, AfterValidator(_fhir_id)]


class _Lenient(BaseModel):
    """Request side: unknown members (and `extension`) are ignored, as the spec asks."""

    model_config = ConfigDict(extra="ignore")


class _Wire(BaseModel):
    """Response side: nothing but the spec's members."""

    model_config = ConfigDict(extra="forbid")


# --- requests ---------------------------------------------------------------------------------------

class FhirAuthorization(_Lenient):
    access_token: Annotated[str, AfterValidator(_header_token)]
    token_type: Literal["Bearer", "bearer"]
    expires_in: int
    scope: NonEmpty
    subject: NonEmpty
    patient: str | None = None


class HookRequest(_Lenient):
    hook: NonEmpty
    hookInstance: NonEmpty
    fhirServer: Annotated[str, AfterValidator(_fhir_base)] | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def authorization_needs_server(self) -> HookRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is present")
        return self


class PatientViewContext(_Lenient):
    userId: NonEmpty
    patientId: FhirId
    encounterId: str | None = None


class DraftEntry(_Lenient):
    resource: dict[str, Any] | None = None

    @model_validator(mode="after")
    def resource_has_a_type(self) -> DraftEntry:
        if self.resource is not None and not isinstance(self.resource.get("resourceType"), str):
            raise ValueError("resource needs a resourceType (a string)")
        return self


class DraftOrders(_Lenient):
    """The Bundle of draft orders: its shape is checked (400 naming the field); what is inside each
    resource is read leniently (fhir/record.py), as real EHRs write it. An entry without a resource
    is skipped."""

    resourceType: Literal["Bundle"]
    entry: list[DraftEntry] = []

    @property
    def resources(self) -> list[dict[str, Any]]:
        return [entry.resource for entry in self.entry if entry.resource is not None]


class OrderSignContext(PatientViewContext):
    draftOrders: DraftOrders


class OrderSelectContext(PatientViewContext):
    # Lenient on purpose: the sandbox calls order-select without them when a tab is re-clicked.
    selections: list[str] = []
    draftOrders: DraftOrders | None = None


CONTEXTS: dict[str, type[PatientViewContext]] = {
    "patient-view": PatientViewContext,
    "order-select": OrderSelectContext,
    "order-sign": OrderSignContext,
}


# --- responses --------------------------------------------------------------------------------------

class Coding(_Wire):
    system: NonEmpty
    code: NonEmpty
    display: NonEmpty | None = None


class OverrideReason(Coding):
    display: NonEmpty
    extension: dict[str, Coding] | None = None
    """`org.cds-spine.standard-override-reason`: the same reason in the CDS Hooks 3.0 ballot's code system."""


class Source(_Wire):
    label: NonEmpty
    url: AbsoluteUrl | None = None
    icon: AbsoluteUrl | None = None
    topic: Coding | None = None


class Action(_Wire):
    type: Literal["create", "update", "delete"]
    description: NonEmpty
    resource: dict[str, Any] | None = None
    resourceId: NonEmpty | None = None

    @model_validator(mode="after")
    def resource_or_id(self) -> Action:
        if self.type == "delete":
            if not self.resourceId or self.resource is not None:
                raise ValueError("a delete action carries resourceId and no resource")
        elif not self.resource or not self.resource.get("resourceType"):
            raise ValueError(f"a {self.type} action carries a resource with resourceType")
        return self


class Suggestion(_Wire):
    label: NonEmpty
    uuid: UUID
    isRecommended: bool | None = None
    actions: list[Action] | None = Field(None, min_length=1)


class Link(_Wire):
    label: NonEmpty
    url: AbsoluteUrl
    type: Literal["absolute", "smart"]
    appContext: NonEmpty | None = None

    @model_validator(mode="after")
    def app_context_only_on_smart(self) -> Link:
        if self.appContext is not None and self.type != "smart":
            raise ValueError("appContext is only allowed on smart links")
        return self


class Card(_Wire):
    uuid: UUID
    summary: str = Field(min_length=1, max_length=139)
    detail: NonEmpty | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = Field(None, min_length=1)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[OverrideReason] | None = Field(None, min_length=1)
    links: list[Link] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def suggestions_need_selection_behavior(self) -> Card:
        if bool(self.suggestions) != bool(self.selectionBehavior):
            raise ValueError("selectionBehavior is required with suggestions, and only with them")
        if self.selectionBehavior == "at-most-one" and sum(
                bool(s.isRecommended) for s in self.suggestions or ()) > 1:
            raise ValueError("at most one suggestion may be recommended when selectionBehavior is at-most-one")
        return self


class CdsResponse(_Wire):
    cards: list[Card]
    systemActions: list[Action] | None = None  # noqa: N815 - the spec's name

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# --- discovery --------------------------------------------------------------------------------------

class Service(_Wire):
    hook: Literal["patient-view", "order-select", "order-sign"]
    id: NonEmpty
    title: NonEmpty
    description: NonEmpty
    prefetch: dict[str, NonEmpty]


class Discovery(_Wire):
    services: list[Service] = Field(min_length=1)


# --- feedback ---------------------------------------------------------------------------------------

class FeedbackCoding(_Lenient):
    """The sandbox sends only code and system; display is optional here."""

    code: NonEmpty
    system: str | None = None
    display: str | None = None


class OverrideReasonFeedback(_Lenient):
    reason: FeedbackCoding | None = None
    userComment: str | None = None


class AcceptedSuggestion(_Lenient):
    id: NonEmpty


class FeedbackItem(_Lenient):
    card: NonEmpty
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReasonFeedback | None = None
    outcomeTimestamp: AwareDatetime

    @model_validator(mode="after")
    def accepted_names_suggestions(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is accepted")
        return self


class FeedbackRequest(_Lenient):
    feedback: list[FeedbackItem] = Field(min_length=1)
