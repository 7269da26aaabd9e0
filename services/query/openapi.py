"""What the query service's OpenAPI says it answers: bodies, media types, every error status.

The handlers return pre-serialised bytes (orjson) for speed, so these models only document the
shapes; tests check real answers against them (schemathesis, and the integration tests).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from services.common.problems import PROBLEM_MEDIA_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "in": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


def problem(description: str) -> dict[str, Any]:
    """An error response documented as RFC 9457 problem+json."""
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: problem("No bearer token, or one that is invalid or expired."),
    403: problem("The token's role may not read this, or it is not scoped to the operation."),
}
INVALID_ERRORS: dict[int | str, dict[str, Any]] = {
    422: problem("A parameter is invalid; `errors[].path` names it."),
}
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    404: problem("No event of this operation has been applied."),
    **INVALID_ERRORS,
}
# The auditor routes answer an unknown operation with an empty history, not a 404.
AUDIT_ERRORS: dict[int | str, dict[str, Any]] = {**AUTH_ERRORS, **INVALID_ERRORS}


def body(media_type: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A 200 answer of ``media_type`` (for handlers that return a plain Response)."""
    return {"description": description, "content": {media_type: {"schema": schema}}}


class PartitionFreshness(BaseModel):
    partition: int
    last_offset: int
    highwater: int | None
    lag: int | None = Field(description="highwater - last_offset - 1")
    last_event_at: str | None = Field(description="recorded_at of the newest applied event")
    updated_at: str | None


class Freshness(BaseModel):
    """How far the aggregator has applied the log (read before the totals)."""

    consumer_group: str
    topic: str
    lag: int | None
    last_event_at: str | None
    partitions: list[PartitionFreshness]


class Group(BaseModel):
    """One part of a grouped answer: the dimensions asked for, and every metric."""

    area: str | None = None
    unit: str | None = None
    day: str | None = Field(None, description="YYYY-MM-DD, Europe/London")
    item: str | None = Field(None, description="substance or age band; null for other metrics")
    metrics: dict[str, int]


class TotalsAnswer(BaseModel):
    """Every metric (zeros included), groups that sum to them, and freshness."""

    operation_id: str
    group_by: list[str]
    as_of: str | None
    known_at: str | None
    version: int = Field(description="seq of the operation's newest applied event")
    metrics: dict[str, int]
    groups: list[Group]
    freshness: Freshness


class OperationHeadline(BaseModel):
    operation_id: str
    events: int
    first_event_at: str
    last_change_at: str
    metrics: dict[str, int]
    title: str = Field(description="The record's title; the slug of an implicit operation")
    status: Literal["implicit", "planned", "active", "closed"]
    areas: list[str]
    planned_start: str | None
    planned_end: str | None
    closed_at: str | None


class OperationsAnswer(BaseModel):
    """The operations the caller may read, with their headline totals."""

    operations: list[OperationHeadline]
    freshness: Freshness


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """A 200 JSON answer documented by ``model``."""
    return {"description": description, "model": model}


def tidy_optional_parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """Describe an optional query parameter as its type, not ``anyOf [type, null]``.

    A query string cannot carry a null; leaving the null branch in makes clients (and fuzzers)
    treat ``format``/``pattern`` as optional decoration of an untyped value.
    """
    for methods in spec.get("paths", {}).values():
        for operation in methods.values():
            for param in operation.get("parameters", []):
                schema = param.get("schema", {})
                branches = schema.get("anyOf")
                if not branches:
                    continue
                kept = [b for b in branches if b.get("type") != "null"]
                if len(kept) == 1 and len(kept) < len(branches):
                    rest = {k: v for k, v in schema.items() if k != "anyOf"}
                    param["schema"] = {**kept[0], **rest}
    return spec


# PostgreSQL text cannot hold a NUL: such a value is answered 422, so the schema excludes it.
NO_NUL_PATTERN = "^[^\\u0000]*$"


def forbid_nul_in_text_parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """Give every free-text parameter (no pattern, format or enum) a pattern without NUL."""
    for methods in spec.get("paths", {}).values():
        for operation in methods.values():
            for param in operation.get("parameters", []):
                schema = param.get("schema", {})
                if schema.get("type") == "string" and not {"pattern", "format", "enum"} & set(
                    schema
                ):
                    schema["pattern"] = NO_NUL_PATTERN
    return spec
