"""Corrections: an event is never edited or deleted, only voided by a later event."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from schemas._types import STRICT_FROZEN, EventId, Note
from schemas.envelope import Envelope, SchemaV1


class VoidPayload(BaseModel):
    """Which event of the same operation to void, and why."""

    model_config = STRICT_FROZEN
    voided_event_id: EventId
    reason: Note


class EventVoided(Envelope):
    """An earlier event of the same operation no longer counts; it stays in history."""

    type: Literal["event_voided"]
    schema_version: SchemaV1
    payload: VoidPayload
