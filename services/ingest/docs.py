"""The ingest OpenAPI document: answer models, and the event contract as the request bodies.

Handlers parse raw bytes with `schemas.parse_event` (faster, and exact error paths); these
models exist so /openapi.json tells a client precisely what to send and what comes back.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from schemas.events import FIELD_EVENT_ADAPTER
from schemas.examples import example_events

REF = "#/components/schemas/{model}"
JSON = "application/json"

DESCRIPTION = """\
Field apps send events here; each answer with 2xx means the event is in Kafka (acks=all)
and will be counted exactly once. Retry anything else with the same `event_id`.

* `POST /v1/events`: one event. **202** `{event_id, partition, offset}`.
* `POST /v1/events/batch`: `{"events": [...]}`, at most 1,000 events and 1 MiB. Each item is
  judged on its own and answered in input order. The accepted events of each operation are
  written as one Kafka record (a *submission*); `record_index` is the event's place in it.
  * **202**: every item accepted.
  * **207**: some accepted, some not (`rejected` items carry `errors`; `unavailable` items
    were valid but the broker did not acknowledge them: retry those).
  * **422** (problem+json, with `results`): no item accepted because of contract errors;
    **403** when every item was refused only because the token does not cover its operation;
    **503** with `Retry-After` when valid items could not be written because the broker is down.
* Errors are RFC 9457 problem+json: 400 malformed JSON, 401 no or bad token, 403 wrong role or
  operation, 413 body too large, 415 not JSON, 422 contract errors naming each field
  (`errors[].path`), 503 broker unavailable (with `Retry-After`).
* `recorded_at` and `principal` are set by the server; sending them is a 422.
"""


class ErrorEntry(BaseModel):
    """One problem with one field."""

    path: str = Field(description="Dotted path of the field, empty for the whole event.")
    message: str


class Accepted(BaseModel):
    """Where the broker stored the event."""

    model_config = ConfigDict(extra="forbid")
    event_id: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class BatchItem(BaseModel):
    """The outcome of one batch item, at the same index as in the request."""

    index: int = Field(ge=0)
    event_id: str | None = Field(None, description="The item's event_id when it had one.")
    status: Literal["accepted", "rejected", "unavailable"]
    partition: int | None = Field(None, ge=0)
    offset: int | None = Field(None, ge=0)
    record_index: int | None = Field(None, ge=0, description="Position inside the Kafka record.")
    reason: Literal["contract", "forbidden", "unavailable"] | None = None
    errors: list[ErrorEntry] | None = None


class BatchResult(BaseModel):
    """Per-item results of a batch, with the count of each outcome."""

    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0)
    unavailable: int = Field(ge=0)
    results: list[BatchItem]


class Problem(BaseModel):
    """RFC 9457 problem details; batch failures add `accepted`, `rejected`, `results`."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


class Health(BaseModel):
    """Liveness or readiness."""

    status: str


class Principal(BaseModel):
    """Whom a token names: the capture app shows it and offers the token's operations."""

    subject: str
    role: Literal["field", "supervisor", "auditor", "admin"]
    operations: list[str]


def problem(description: str, retry_after: bool = False) -> dict[str, Any]:
    """An OpenAPI response entry whose body is problem+json."""
    entry: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
    }
    if retry_after:
        entry["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}
        }
    return entry


def json_body(model: str, description: str) -> dict[str, Any]:
    """An OpenAPI response entry with a JSON body of a named component."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
    }


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: problem("Malformed JSON."),
    401: problem("No token, or an invalid or expired one."),
    403: problem("The token's role may not write, or does not cover the event's operation."),
    413: problem("The body exceeds the configured limit (1 MiB by default)."),
    415: problem("The body is not declared as application/json."),
    422: problem("The event breaks the contract; `errors` names each field."),
    503: problem("The broker is unavailable or did not acknowledge in time.", retry_after=True),
}


def event_request_body() -> dict[str, Any]:
    """OpenAPI requestBody for one event: the FieldEvent union."""
    example = example_events()[0]
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": REF.format(model="FieldEvent")},
                "examples": {"warrant_executed": {"value": example}},
            }
        },
    }


def batch_request_body(max_events: int) -> dict[str, Any]:
    """OpenAPI requestBody for a batch: an object holding an array of FieldEvents."""
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "events": {
                            "type": "array",
                            "items": {"$ref": REF.format(model="FieldEvent")},
                            "minItems": 1,
                            "maxItems": max_events,
                        }
                    },
                    "required": ["events"],
                    "additionalProperties": False,
                },
                "examples": {"mixed_kinds": {"value": {"events": example_events()[:3]}}},
            }
        },
    }


def _add_components(components: dict[str, Any], schema: dict[str, Any], name: str) -> None:
    for def_name, definition in schema.pop("$defs", {}).items():
        components.setdefault(def_name, definition)
    components[name] = schema


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the event contract and the answer models as components."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    _add_components(components, FIELD_EVENT_ADAPTER.json_schema(ref_template=REF), "FieldEvent")
    for model in (Accepted, BatchResult, Problem, Health, Principal):
        _add_components(components, model.model_json_schema(ref_template=REF), model.__name__)
    # The router is shared by every app; the batch limit is this app's setting.
    batch = doc["paths"]["/v1/events/batch"]["post"]["requestBody"]["content"][JSON]["schema"]
    batch["properties"]["events"]["maxItems"] = app.state.settings.max_batch_events
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    app.openapi_schema = doc
    return doc
