"""Arrests, by age band."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from schemas._types import STRICT_FROZEN, Name, Ref
from schemas.envelope import Envelope, SchemaV1

AgeBand = Literal["adult", "youth"]


class ArrestPayload(BaseModel):
    """What `arrest_made` carries; `person_ref` is pseudonymous, never a name."""

    model_config = STRICT_FROZEN
    person_ref: Ref  # pseudonymous: never a name
    age_band: AgeBand
    offences: Annotated[tuple[Name, ...], Field(min_length=1, max_length=20)]


class ArrestMade(Envelope):
    """A person was arrested."""

    type: Literal["arrest_made"]
    schema_version: SchemaV1
    payload: ArrestPayload
