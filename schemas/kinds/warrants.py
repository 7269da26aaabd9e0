"""Warrants executed at premises."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from schemas._types import STRICT_FROZEN, Note, Ref
from schemas.envelope import Envelope, SchemaV1


class WarrantPayload(BaseModel):
    """What `warrant_executed` carries."""

    model_config = STRICT_FROZEN
    warrant_ref: Ref
    premises: Note | None = None


class WarrantExecuted(Envelope):
    """A search or arrest warrant was executed."""

    type: Literal["warrant_executed"]
    schema_version: SchemaV1
    payload: WarrantPayload
