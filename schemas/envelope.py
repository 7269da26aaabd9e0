"""The envelope every field event shares: who, where, when, and which operation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from schemas._types import (
    STRICT_FROZEN,
    EventId,
    Latitude,
    Longitude,
    Name,
    Ref,
    Slug,
    Timestamp,
    Version,
)

CURRENT_SCHEMA_VERSION = 1
#: Fields the ingest service stamps; a client that sends them is refused.
SERVER_FIELDS = ("recorded_at", "principal")


class Actor(BaseModel):
    """The officer who recorded the event and their unit."""

    model_config = STRICT_FROZEN
    officer_id: Ref
    unit: Name


class Location(BaseModel):
    """Where it happened: a policing area, optionally a point."""

    model_config = STRICT_FROZEN
    area: Name
    lat: Latitude | None = None
    lon: Longitude | None = None


class Source(BaseModel):
    """The device and app build that submitted the event."""

    model_config = STRICT_FROZEN
    device_id: Ref
    app_version: Version | None = None


class Envelope(BaseModel):
    """Fields common to every kind; each kind adds ``type``, ``schema_version`` and ``payload``."""

    model_config = STRICT_FROZEN
    event_id: EventId = Field(
        description="Idempotency key chosen by the client; a retry reuses it."
    )
    operation_id: Slug = Field(description="The operation this event belongs to.")
    occurred_at: Timestamp = Field(
        description="When it happened, RFC 3339 with an offset; at most 5 minutes after the"
        " server clock."
    )
    actor: Actor
    location: Location
    source: Source


# A Literal[1] alone would take true, 1.0 or 1e0 for 1, even in strict mode. Not pydantic's
# "int_type": pydantic-core lets only an error type of its own carry a message of ours.
_NOT_INTEGER, _NOT_INTEGER_MESSAGE = "integer_only", "must be an integer"


def _integer_only(value: Any) -> Any:
    if type(value) is not int:
        raise PydanticCustomError(_NOT_INTEGER, _NOT_INTEGER_MESSAGE)
    return value


class _IntegerOnly:
    """Refuses anything but an integer before the ``Literal[n]`` it annotates.

    JSON (every event: `schemas.parsing` validates JSON) is checked by pydantic-core alone, no
    Python call: a strict integer, then the literal. A Python value goes through `_integer_only`.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        literal = handler(source)
        strict_int = core_schema.custom_error_schema(
            core_schema.int_schema(strict=True),
            custom_error_type=_NOT_INTEGER,
            custom_error_message=_NOT_INTEGER_MESSAGE,
        )
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema([strict_int, literal]),
            python_schema=core_schema.no_info_before_validator_function(_integer_only, literal),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # The literal's own schema (a chain is described by its first step, the bare integer).
        assert schema["type"] == "json-or-python"  # noqa: S101 - built just above
        return handler(schema["python_schema"]["schema"])


#: Put before the ``Literal[n]`` of a kind's ``schema_version``.
VersionIsInteger = _IntegerOnly()
SchemaV1 = Annotated[Literal[1], VersionIsInteger]
