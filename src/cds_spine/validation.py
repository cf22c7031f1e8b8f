"""Pydantic validation as the service reports it: one OperationOutcome issue per problem, naming the field
(a request body's, or a query's parameter)."""
from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InvalidRequest, Issue

Model = TypeVar("Model", bound=BaseModel)


def validate(model: type[Model], data: Any, prefix: str = "", context: dict[str, Any] | None = None) -> Model:
    """The model, or InvalidRequest with one OperationOutcome issue per problem, naming the field."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False, include_input=False):
            path = field_path(prefix, *error["loc"]) or None
            if error["type"] == "missing":
                issues.append(Issue("required", f"{path} is required", path))
            elif error["type"] == "extra_forbidden":
                known = ", ".join(sorted(field.alias or name for name, field in model.model_fields.items()))
                issues.append(Issue("not-supported", f"unknown parameter {path!r}; this endpoint takes {known or 'none'}",
                                    path))
            else:
                message = error["msg"].removeprefix("Value error, ")
                issues.append(Issue("invalid", f"{path}: {message}" if path else message, path))
        raise InvalidRequest(*issues) from None


def field_path(*parts: str | int) -> str:
    """A FHIRPath-like name of a field: `context.draftOrders.entry[3].resource`."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "":
            path += f".{part}" if path else part
    return path
