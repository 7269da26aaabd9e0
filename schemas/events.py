"""The union of all kinds as a client submits them, discriminated on ``type``."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field, TypeAdapter

from schemas.kinds.arrests import ArrestMade
from schemas.kinds.corrections import EventVoided
from schemas.kinds.outreach import SchoolVisited, VulnerablePersonEngaged
from schemas.kinds.seizures import ITEMS, ItemSeized
from schemas.kinds.warrants import WarrantExecuted

FieldEvent = Annotated[
    WarrantExecuted
    | ArrestMade
    | ItemSeized
    | SchoolVisited
    | VulnerablePersonEngaged
    | EventVoided,
    Field(discriminator="type"),
]

#: Kind name (the ``type`` value) to its model, in documentation order.
KINDS: Final[dict[str, type[FieldEvent]]] = {
    "warrant_executed": WarrantExecuted,
    "arrest_made": ArrestMade,
    "item_seized": ItemSeized,
    "school_visited": SchoolVisited,
    "vulnerable_person_engaged": VulnerablePersonEngaged,
    "event_voided": EventVoided,
}

#: Tag values of unions nested inside a payload, which pydantic puts in error locations and a
#: client never wrote: (kind, field) -> tags.
NESTED_TAGS: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("item_seized", "payload"): frozenset(ITEMS),
}

FIELD_EVENT_ADAPTER: Final[TypeAdapter[FieldEvent]] = TypeAdapter(FieldEvent)
