"""Versioning: a test-only version 2 of warrant_executed proves v1 events are still read."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, TypeAdapter

from schemas import (
    ArrestMade,
    ContractError,
    EventParser,
    EventVoided,
    ItemSeized,
    SchoolVisited,
    UpcasterRegistry,
    VulnerablePersonEngaged,
    example_events,
    parse_event,
)
from schemas._types import STRICT_FROZEN, Note, Ref
from schemas.envelope import Envelope, VersionIsInteger
from schemas.tally import fold


class WarrantPayloadV2(BaseModel):
    model_config = STRICT_FROZEN
    warrant_number: Ref  # was warrant_ref in v1
    premises: Note | None = None


class WarrantExecutedV2(Envelope):
    type: Literal["warrant_executed"]
    schema_version: Annotated[Literal[2], VersionIsInteger]
    payload: WarrantPayloadV2


FieldEventV2 = Annotated[
    WarrantExecutedV2
    | ArrestMade
    | ItemSeized
    | SchoolVisited
    | VulnerablePersonEngaged
    | EventVoided,
    Field(discriminator="type"),
]

REGISTRY = UpcasterRegistry()


@REGISTRY.register("warrant_executed", 1)
def _rename_warrant_ref(raw: dict[str, Any]) -> dict[str, Any]:
    payload = dict(raw["payload"])
    payload["warrant_number"] = payload.pop("warrant_ref")
    return {**raw, "payload": payload}


PARSER_V2: EventParser[Any] = EventParser(TypeAdapter(FieldEventV2), REGISTRY)


def test_v1_event_is_read_as_v2() -> None:
    raw = example_events("warrant_executed")[0]
    event = PARSER_V2.parse(raw)
    assert isinstance(event, WarrantExecutedV2)
    assert event.schema_version == 2
    assert event.payload.warrant_number == raw["payload"]["warrant_ref"]
    assert raw["payload"]["warrant_ref"] == "W-2026-0142"  # the caller's dict is untouched


def test_v2_event_is_read_directly_and_v1_shape_under_v2_is_refused() -> None:
    v2 = example_events("warrant_executed")[0]
    v2["schema_version"] = 2
    v2["payload"] = {"warrant_number": "W-1"}
    assert PARSER_V2.parse(v2).payload.warrant_number == "W-1"
    v2["payload"] = {"warrant_ref": "W-1"}  # claims v2 but has the v1 field
    with pytest.raises(ContractError) as info:
        PARSER_V2.parse(v2)
    assert {e["path"] for e in info.value.errors} == {
        "payload.warrant_number",
        "payload.warrant_ref",
    }


def test_v1_events_fold_into_the_same_totals_under_v2() -> None:
    v1_events = [parse_event(e) for e in example_events()]
    v2_events = [PARSER_V2.parse(e) for e in example_events()]
    assert any(isinstance(e, WarrantExecutedV2) for e in v2_events)
    assert fold(v2_events) == fold(v1_events)


def test_unknown_version_is_refused_naming_schema_version() -> None:
    raw = example_events("warrant_executed")[0]
    raw["schema_version"] = 3
    with pytest.raises(ContractError) as info:
        PARSER_V2.parse(raw)
    assert "schema_version" in {e["path"] for e in info.value.errors}


def test_upcasters_chain_in_version_order() -> None:
    registry = UpcasterRegistry()
    seen: list[int] = []

    @registry.register("school_visited", 2)
    def _two(raw: dict[str, Any]) -> dict[str, Any]:
        seen.append(raw["schema_version"])
        return {**raw, "b": raw["a"] + 1}

    @registry.register("school_visited", 1)
    def _one(raw: dict[str, Any]) -> dict[str, Any]:
        seen.append(raw["schema_version"])
        return {**raw, "a": 1}

    out = registry.upcast({"type": "school_visited", "schema_version": 1})
    assert out == {"type": "school_visited", "schema_version": 3, "a": 1, "b": 2}
    assert seen == [1, 2]
    assert registry.upcast({"type": "arrest_made", "schema_version": 1}) == {
        "type": "arrest_made",
        "schema_version": 1,
    }


def test_registering_twice_is_an_error() -> None:
    registry = UpcasterRegistry()
    registry.register("school_visited", 1)(lambda raw: raw)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("school_visited", 1)(lambda raw: raw)
