"""Prevention and safeguarding: schools visited, vulnerable people engaged."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from schemas._types import STRICT_FROZEN, Ref
from schemas.envelope import Envelope, SchemaV1


class SchoolPayload(BaseModel):
    """What `school_visited` carries."""

    model_config = STRICT_FROZEN
    school_ref: Ref
    pupils_engaged: Annotated[int, Field(ge=0, le=10_000)] | None = None


class SchoolVisited(Envelope):
    """Officers visited a school."""

    type: Literal["school_visited"]
    schema_version: SchemaV1
    payload: SchoolPayload


class VulnerablePersonPayload(BaseModel):
    """What `vulnerable_person_engaged` carries; `person_ref` is pseudonymous."""

    model_config = STRICT_FROZEN
    person_ref: Ref  # pseudonymous: never a name
    safeguarding_referral: bool


class VulnerablePersonEngaged(Envelope):
    """Officers engaged a vulnerable person (e.g. a victim of cuckooing)."""

    type: Literal["vulnerable_person_engaged"]
    schema_version: SchemaV1
    payload: VulnerablePersonPayload
