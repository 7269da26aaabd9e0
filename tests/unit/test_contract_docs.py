"""docs/events.md stays true: its examples are valid events and every field is described."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from schemas import KINDS, parse_event
from schemas.envelope import Envelope
from schemas.export import build_schemas

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", TEXT, re.S)]


def section(kind: str) -> str:
    start = TEXT.index(f"### `{kind}`")
    end = TEXT.find("\n### ", start + 1)
    return TEXT[start : end if end != -1 else None]


def property_names(schema: dict[str, Any], ref: str) -> set[str]:
    """Every property name under a payload definition, across the variants of a union."""
    node = schema["$defs"][ref.rsplit("/", 1)[-1]]
    names = set(node.get("properties", {}))
    for variant in node.get("oneOf", []):
        names |= property_names(schema, variant["$ref"])
    return names


def test_every_example_parses() -> None:
    assert len(EXAMPLES) >= len(KINDS)
    for example in EXAMPLES:
        parse_event(example)


def test_every_kind_has_a_section_and_an_example() -> None:
    assert {e["type"] for e in EXAMPLES} == set(KINDS)
    for kind in KINDS:
        assert json.dumps(next(e for e in EXAMPLES if e["type"] == kind), indent=2) in section(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_every_payload_field_is_described_in_its_section(kind: str) -> None:
    schema = build_schemas()[f"{kind}.schema.json"]
    payload_ref = schema["properties"]["payload"].get("$ref")
    if payload_ref is None:  # an inline union (item_seized)
        names: set[str] = set()
        for variant in schema["properties"]["payload"]["oneOf"]:
            names |= property_names(schema, variant["$ref"])
    else:
        names = property_names(schema, payload_ref)
    missing = {n for n in names if f"`{n}`" not in section(kind)}
    assert not missing, f"{kind}: undocumented payload fields {missing}"


def test_every_envelope_field_is_in_the_envelope_table() -> None:
    table = TEXT[TEXT.index("## Envelope") : TEXT.index("## Kinds")]
    for name in [*Envelope.model_fields, "type", "schema_version", "payload"]:
        assert f"| `{name}` |" in table
    for name in ("officer_id", "unit", "area", "lat", "lon", "device_id", "app_version"):
        assert f"`{name}`" in table
