"""What PostgreSQL cannot store faithfully is refused by the contract, naming the field; numbers
have one spelling before they are hashed. The hostile corpus of tests/reliability, judged here by
the contract alone (the reliability test sends the same cases through the whole pipeline)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas import ContractError, event_to_dict, parse_event
from schemas.canonical import canonical_json, content_hash
from schemas.examples import fresh_event
from tests.reliability.hostile import (
    Case,
    number_cases,
    structured_cases,
    text_cases,
    text_fields,
    timestamp_cases,
)

NOW = datetime.now(UTC)
CASES = [
    *text_cases(lambda kind: f"op-{kind.replace('_', '-')}", NOW),
    *number_cases(lambda kind: f"op-{kind.replace('_', '-')}", NOW),
    *timestamp_cases("op-times", NOW),
    *structured_cases(lambda kind: f"op-{kind.replace('_', '-')}", NOW),
]


def test_every_text_field_of_every_kind_is_attacked() -> None:
    fields = {(f.kind, f.path) for f in text_fields()}
    assert ("warrant_executed", "actor.officer_id") in fields
    assert ("arrest_made", "payload.offences.0") in fields
    assert ("item_seized", "payload.description") in fields
    assert ("event_voided", "payload.reason") in fields
    # 5 envelope fields in each of 6 kinds, and each kind's own
    assert len(fields) == 6 * 5 + 2 + 2 + 1 + 1 + 1 + 1
    assert {f.path for f in text_fields() if f.multi_line} == {
        "payload.premises", "payload.description", "payload.reason",
    }  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.target}:{c.klass}")
def test_the_contract_gives_each_hostile_value_its_fate(case: Case) -> None:
    try:
        event = parse_event(case.body, now=NOW)
    except ContractError as exc:
        assert case.fate == "refused", exc.errors
        assert case.path in [e["path"] for e in exc.errors], exc.errors
        return
    assert case.fate == "counted", event
    # what is accepted is stored by its dump, which must survive JSON unchanged
    dumped = event_to_dict(event)
    assert parse_event(orjson.dumps(dumped)) == event


def test_nul_message_names_the_character_and_where() -> None:
    event = fresh_event("op-nul")
    event["actor"]["unit"] = "TVP\x00"
    with pytest.raises(ContractError) as info:
        parse_event(event)
    assert info.value.errors == [
        {
            "path": "actor.unit",
            "message": "must not contain control characters (U+0000-U+001F, U+007F-U+009F);"
            " found U+0000 at character 3",
        }
    ]


def test_lone_surrogate_in_a_dict_and_in_a_field_name_are_named() -> None:
    event = fresh_event("op-sur")
    event["source"]["device_id"] = "tab\udc80"
    with pytest.raises(ContractError) as info:
        parse_event(event)
    assert [e["path"] for e in info.value.errors] == ["source.device_id"]
    raw = orjson.dumps(fresh_event("op-sur")).replace(b'"actor"', b'"act\\ud800or"')
    with pytest.raises(ContractError) as info:
        parse_event(raw)
    assert [e["path"] for e in info.value.errors] == ["act\\ud800or"]


@pytest.mark.parametrize("spelling", ["-0.0", "-0", "0", "0.0", "0e10", "-0.0e-3", "-1e-400"])
def test_zero_has_one_spelling_and_one_hash(spelling: str) -> None:
    event = fresh_event("op-zero")
    event["location"] = {"area": "Oxfordshire", "lon": "@"}
    raw = orjson.dumps(event).replace(b'"@"', spelling.encode())
    dumped = event_to_dict(parse_event(raw))
    assert orjson.dumps(dumped["location"]) == b'{"area":"Oxfordshire","lon":0.0}'
    event["location"]["lon"] = 0.0
    assert content_hash(dumped) == content_hash(event_to_dict(parse_event(event)))


@pytest.mark.parametrize("spelling", ["51.8168", "51.81680000", "5.18168e1", "5181.68E-2"])
def test_spellings_of_one_coordinate_are_one_event(spelling: str) -> None:
    event = fresh_event("op-spell")
    event["location"] = {"area": "Oxfordshire", "lat": "@"}
    raw = orjson.dumps(event).replace(b'"@"', spelling.encode())
    assert event_to_dict(parse_event(raw))["location"]["lat"] == 51.8168
    assert b'"lat":51.8168' in canonical_json(event_to_dict(parse_event(raw)))


def test_canonical_json_writes_negative_zero_as_zero_at_any_depth() -> None:
    assert canonical_json({"b": [-0.0, {"c": -0.0}], "a": -0.05}) == (
        b'{"a":-0.05,"b":[0.0,{"c":0.0}]}'
    )
    assert canonical_json({"s": "-0.0,"}) == b'{"s":"-0.0,"}'  # text is text
