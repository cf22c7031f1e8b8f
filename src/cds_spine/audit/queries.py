"""The /audit endpoints' query parameters, one pydantic model per endpoint: an unknown parameter or a value of
the wrong kind is a 400 naming it (validation.validate). The regions and measure components a query may name
come from the knowledge, as the validation context (`choices`)."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..pathway import Knowledge
from ..service_ids import ORDER_SIGN, SERVICE_IDS
from .filters import Filters
from .measure import MeasureDefinition
from .orders import Decision, Grouping, OrderKind, ReportPeriod, reportable

Flag = Literal["true", "false"]
Day = Annotated[date, AfterValidator(reportable)]
PageNumber = Annotated[int, Field(ge=1, le=1_000_000)]


def choices(knowledge: Knowledge, measure: MeasureDefinition) -> dict[str, Any]:
    """The validation context: what `region`, `component` and `service` may be."""
    return {"region": sorted(knowledge.config.regions), "component": [c.id for c in measure.components],
            "service": ["all", *SERVICE_IDS]}


def _one_of(value: str | None, info: ValidationInfo) -> str | None:
    allowed = (info.context or {}).get(info.field_name or "", ())
    if value is not None and value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return value


def _flag(value: Flag | None) -> bool | None:
    return None if value is None else value == "true"


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeriodQuery(Query):
    # `until` is declared first so that `since`'s check can read it (fields are validated in order).
    until: Day | None = None
    since: Day | None = None

    @field_validator("since")
    @classmethod
    def _not_after_until(cls, since: date | None, info: ValidationInfo) -> date | None:
        until = info.data.get("until")
        if since and until and since > until:
            raise ValueError("must not be after until")
        return since

    @property
    def period(self) -> ReportPeriod:
        return ReportPeriod(self.since, self.until)


class OrderQuery(PeriodQuery):
    """The filters of audit.filters.Filters, for order-sign calls."""

    decision: Decision | None = None
    clinician: str | None = None
    kind: OrderKind | None = None
    region: str | None = None
    site: str | None = None
    component: str | None = None
    overridden: Flag | None = None
    knowledge: str | None = Field(None, pattern=r"^[0-9a-f]{1,64}$")

    _known = field_validator("region", "component")(_one_of)

    def filters(self, measure: MeasureDefinition, knowledge: Knowledge) -> Filters:
        region = knowledge.config.same_region(self.region) if self.region else None
        return Filters(decision=self.decision, clinician=self.clinician, kind=self.kind, region=region,
                       site=self.site, component=measure.component(self.component) if self.component else None,
                       overridden=_flag(self.overridden), knowledge=self.knowledge)


class RunQuery(OrderQuery):
    run: str | None = None
    """A bulk run (`cds-spine audit-bulk`) under CDS_SPINE_BULK_RUNS_DIR, read instead of the live audit."""


class ReportQuery(RunQuery):
    by: Grouping = "month"
    format: Literal["json", "csv"] = "json"


class ReportCardsQuery(RunQuery):
    format: Literal["html", "pdf", "json"] = "html"


class CommentsQuery(RunQuery):
    page: PageNumber = 1
    pageSize: int = Field(50, ge=1, le=500)  # noqa: N815 - the parameter's name


class DecisionsQuery(RunQuery):
    page: PageNumber = 1
    pageSize: int = Field(50, ge=1, le=500)  # noqa: N815
    service: str = ORDER_SIGN
    withOrders: Flag = "true"  # noqa: N815

    _known_service = field_validator("service")(_one_of)

    def filters(self, measure: MeasureDefinition, knowledge: Knowledge) -> Filters:
        return Filters(**{**super().filters(measure, knowledge).__dict__,
                          "service": None if self.service == "all" else self.service,
                          "with_orders": self.withOrders == "true"})


class MeasureReportQuery(Query):
    end: Day  # before start, whose check reads it
    start: Day
    type: Literal["summary", "subject-list"] = "summary"

    @field_validator("start")
    @classmethod
    def _not_after_end(cls, start: date, info: ValidationInfo) -> date:
        end = info.data.get("end")
        if end and start > end:
            raise ValueError("must not be after end")
        return start


class AccessLogQuery(PeriodQuery):
    page: PageNumber = 1
    pageSize: int = Field(100, ge=1, le=1000)  # noqa: N815
    user: str | None = None


class OneRunQuery(Query):
    run: str | None = None
    """A bulk run under CDS_SPINE_BULK_RUNS_DIR whose procedure is asked for, instead of a recorded call."""


class NoQuery(Query):
    """An endpoint that takes no parameters."""
