"""The event contract: envelope, kinds, the pure tally rule, upcasters, JSON Schema.

Everything other packages need is importable from here::

    from schemas import FieldEvent, ContractError, parse_event, event_to_dict, tally, canonical
"""

from schemas import canonical, tally
from schemas.envelope import CURRENT_SCHEMA_VERSION, SERVER_FIELDS, Actor, Location, Source
from schemas.errors import ContractError
from schemas.events import FIELD_EVENT_ADAPTER, KINDS, FieldEvent
from schemas.examples import example_events
from schemas.kinds.arrests import ArrestMade
from schemas.kinds.corrections import EventVoided
from schemas.kinds.outreach import SchoolVisited, VulnerablePersonEngaged
from schemas.kinds.seizures import ItemSeized
from schemas.kinds.warrants import WarrantExecuted
from schemas.parsing import DEFAULT_MAX_FUTURE, EventParser, event_to_dict, parse_event
from schemas.upcasters import UpcasterRegistry, register_upcaster

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "DEFAULT_MAX_FUTURE",
    "FIELD_EVENT_ADAPTER",
    "KINDS",
    "SERVER_FIELDS",
    "Actor",
    "ArrestMade",
    "ContractError",
    "EventParser",
    "EventVoided",
    "FieldEvent",
    "ItemSeized",
    "Location",
    "SchoolVisited",
    "Source",
    "UpcasterRegistry",
    "VulnerablePersonEngaged",
    "WarrantExecuted",
    "canonical",
    "event_to_dict",
    "example_events",
    "parse_event",
    "register_upcaster",
    "tally",
]
