"""The envelope every field event shares: who, where, when, and which operation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

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


def _integer_only(value: Any) -> Any:
    # A Literal[1] alone would take True or 1.0 for 1.
    if type(value) is not int:
        raise PydanticCustomError("int_type", "must be an integer")
    return value


#: Put before the ``Literal[n]`` of a kind's ``schema_version``.
VersionIsInteger = BeforeValidator(_integer_only)
SchemaV1 = Annotated[Literal[1], VersionIsInteger]
