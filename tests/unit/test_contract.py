"""The event contract: what is accepted, what is refused, and how the refusal reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from schemas import (
    KINDS,
    ContractError,
    ItemSeized,
    WarrantExecuted,
    event_to_dict,
    example_events,
    parse_event,
)
from schemas.canonical import GENESIS_HASH, canonical_json, chain_hash, content_hash


def errors_of(data: Any, **kw: Any) -> list[dict[str, str]]:
    with pytest.raises(ContractError) as info:
        parse_event(data, **kw)
    return info.value.errors


def paths(data: Any, **kw: Any) -> set[str]:
    return {e["path"] for e in errors_of(data, **kw)}


def cash() -> dict[str, Any]:
    return example_events("item_seized")[3]


def test_every_kind_has_examples_that_parse_from_bytes_str_and_dict() -> None:
    events = example_events()
    assert {e["type"] for e in events} == set(KINDS)
    for raw in events:
        text = json.dumps(raw)
        parsed = parse_event(text)
        assert parse_event(text.encode()) == parsed == parse_event(raw)
        assert isinstance(parsed, KINDS[raw["type"]])


def test_dump_omits_absent_optionals_and_round_trips() -> None:
    raw = example_events("warrant_executed")[1]
    event = parse_event(raw)
    assert event_to_dict(event) == raw
    assert parse_event(event_to_dict(event)) == event


def test_explicit_null_optional_is_the_same_event_as_absent() -> None:
    raw = example_events("warrant_executed")[1]
    with_null = {**raw, "payload": {**raw["payload"], "premises": None}}
    assert event_to_dict(parse_event(with_null)) == raw


def test_models_are_frozen() -> None:
    event = parse_event(example_events("warrant_executed")[0])
    assert isinstance(event, WarrantExecuted)
    with pytest.raises(ValueError, match="frozen"):
        event.operation_id = "other-op"


@pytest.mark.parametrize("field", ["recorded_at", "principal"])
def test_server_fields_sent_by_a_client_are_refused_by_name(field: str) -> None:
    raw = {**example_events()[0], field: "2026-11-17T06:15:00+00:00"}
    assert errors_of(raw) == [
        {"path": field, "message": "set by the server; a client must not send it"}
    ]


def test_unknown_fields_refused_at_any_depth() -> None:
    raw = example_events("warrant_executed")[0]
    raw["colour"] = "blue"
    raw["actor"]["rank"] = "PC"
    raw["payload"]["extra"] = 1
    assert sorted(errors_of(raw), key=lambda e: e["path"]) == [
        {"path": "actor.rank", "message": "unknown field"},
        {"path": "colour", "message": "unknown field"},
        {"path": "payload.extra", "message": "unknown field"},
    ]


def test_naive_timestamp_refused_with_a_hint() -> None:
    raw = {**example_events()[0], "occurred_at": "2026-11-17T06:15:00"}
    [err] = errors_of(raw)
    assert err["path"] == "occurred_at"
    assert "offset" in err["message"]


@pytest.mark.parametrize(
    "value",
    [1700000000, "1700000000", "2026-11-17", "2026-11-17 06:15:00Z", "2026-13-01T00:00:00Z"],
)
def test_timestamps_other_than_rfc3339_refused(value: Any) -> None:
    assert paths({**example_events()[0], "occurred_at": value}) == {"occurred_at"}


@pytest.mark.parametrize("amount", [12.5, 1250.0, -5, 0, "1250", True])
def test_cash_amount_must_be_a_positive_integer(amount: Any) -> None:
    raw = cash()
    raw["payload"]["amount_pence"] = amount
    assert paths(raw) == {"payload.amount_pence"}


@pytest.mark.parametrize("quantity", [1.0, 0, -1, "3", False, 10**7])
def test_quantity_must_be_a_bounded_positive_integer(quantity: Any) -> None:
    raw = example_events("item_seized")[1]
    raw["payload"]["quantity"] = quantity
    assert paths(raw) == {"payload.quantity"}


def test_cash_with_a_quantity_is_refused_naming_quantity() -> None:
    raw = cash()
    raw["payload"]["quantity"] = 3
    assert errors_of(raw) == [{"path": "payload.quantity", "message": "unknown field"}]


def test_cash_must_be_gbp() -> None:
    raw = cash()
    raw["payload"]["currency"] = "EUR"
    assert paths(raw) == {"payload.currency"}


def test_drug_wrap_without_substance_is_refused() -> None:
    raw = example_events("item_seized")[0]
    del raw["payload"]["substance"]
    assert errors_of(raw) == [{"path": "payload.substance", "message": "field required"}]


def test_substance_only_on_drug_wraps() -> None:
    raw = example_events("item_seized")[1]
    raw["payload"]["substance"] = "crack"
    assert paths(raw) == {"payload.substance"}


def test_unknown_item_and_missing_item_name_the_item_field() -> None:
    raw = example_events("item_seized")[1]
    raw["payload"]["item"] = "car"
    [err] = errors_of(raw)
    assert err["path"] == "payload.item" and "drug_wrap" in err["message"]
    del raw["payload"]["item"]
    assert errors_of(raw) == [{"path": "payload.item", "message": "field required"}]


def test_unknown_type_lists_the_kinds() -> None:
    [err] = errors_of({**example_events()[0], "type": "car_stopped"})
    assert err["path"] == "type"
    assert all(kind in err["message"] for kind in KINDS)


def test_ten_megabyte_string_is_refused_naming_the_field() -> None:
    raw = example_events("warrant_executed")[0]
    raw["payload"]["premises"] = "x" * 10_000_000
    [err] = errors_of(json.dumps(raw).encode())
    assert err["path"] == "payload.premises"
    assert len(err["message"]) < 200  # the input is never echoed back


@pytest.mark.parametrize(
    ("field", "value"),
    [("lat", 90.5), ("lat", -91), ("lon", 180.01), ("lat", "51.8"), ("lon", True)],
)
def test_coordinates_bounded_and_numeric(field: str, value: Any) -> None:
    raw = example_events()[0]
    raw["location"][field] = value
    assert paths(raw) == {f"location.{field}"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("operation_id", "Week Of Action"),
        ("operation_id", "ab"),
        ("operation_id", "x" * 65),
        ("event_id", "not-a-uuid"),
        ("event_id", "5b0e8d1c3f7a4c2e9a610d4c6f1e2b3a"),
        ("schema_version", 2),
        ("schema_version", "1"),
    ],
)
def test_envelope_rules(path: str, value: Any) -> None:
    assert paths({**example_events()[0], path: value}) == {path}


UUID_MESSAGE = "must be a UUID written as 8-4-4-4-12 hexadecimal digits"
TIMESTAMP_MESSAGE = "must be an RFC 3339 timestamp with an offset, e.g. 2026-11-29T10:15:00+00:00"
OFFSET_MESSAGE = "timestamp must carry a UTC offset, e.g. Z or +01:00"
A_UUID = "5b0e8d1c-3f7a-4c2e-9a61-0d4c6f1e2b3a"
# pydantic's own, once the form is right
FEB_30_MESSAGE = "must be a valid datetime or date, day value is outside expected range"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("event_id", "not-a-uuid", UUID_MESSAGE),
        ("event_id", A_UUID.replace("-", ""), UUID_MESSAGE),  # forms a UUID parser would take
        ("event_id", "{" + A_UUID + "}", UUID_MESSAGE),
        ("event_id", "urn:uuid:" + A_UUID, UUID_MESSAGE),
        ("event_id", A_UUID + "\n", UUID_MESSAGE),
        ("event_id", A_UUID.replace("5", "\uff15"), UUID_MESSAGE),  # a full-width digit
        ("event_id", 42, UUID_MESSAGE),
        ("event_id", None, UUID_MESSAGE),
        ("occurred_at", "2026-11-17T06:15:00", OFFSET_MESSAGE),
        ("occurred_at", "2026-11-17t06:15:00.123456", OFFSET_MESSAGE),
        ("occurred_at", "2026-11-17", TIMESTAMP_MESSAGE),
        ("occurred_at", "2026-11-17T06:15:00Z\n", TIMESTAMP_MESSAGE),
        ("occurred_at", "2026-11-17T06:15:00.1234567Z", TIMESTAMP_MESSAGE),
        ("occurred_at", "2026-11-17T06:15:00+24:00", TIMESTAMP_MESSAGE),
        ("occurred_at", "1999-12-31T23:59:59Z", TIMESTAMP_MESSAGE),
        ("occurred_at", 1700000000, TIMESTAMP_MESSAGE),
        ("occurred_at", ["2026-11-17T06:15:00Z"], TIMESTAMP_MESSAGE),
        ("occurred_at", "2026-02-30T06:15:00Z", FEB_30_MESSAGE),
        ("schema_version", True, "must be an integer"),
        ("schema_version", 1.0, "must be an integer"),
        ("schema_version", "1", "must be an integer"),
        ("schema_version", None, "must be an integer"),
        ("schema_version", 2, "must be 1"),
        ("schema_version", 0, "must be 1"),
    ],
)
def test_envelope_refusals_name_the_field_and_say_why(path: str, value: Any, message: str) -> None:
    raw = {**example_events()[0], path: value}
    expected = [{"path": path, "message": message}]
    assert errors_of(raw) == expected
    assert errors_of(json.dumps(raw).encode()) == expected


def test_voided_event_id_is_a_uuid_like_event_id() -> None:
    raw = example_events("event_voided")[0]
    raw["payload"]["voided_event_id"] = "{" + A_UUID + "}"
    assert errors_of(raw) == [{"path": "payload.voided_event_id", "message": UUID_MESSAGE}]


def test_models_built_in_python_take_typed_values_or_the_same_strings() -> None:
    raw = example_events("warrant_executed")[0]
    at = datetime(2026, 11, 17, 7, 15, tzinfo=UTC)
    built = WarrantExecuted.model_validate(
        {**raw, "event_id": UUID(A_UUID), "occurred_at": at, "schema_version": 1}
    )
    assert (built.event_id, built.occurred_at) == (UUID(A_UUID), at)
    assert WarrantExecuted.model_validate({**raw, "event_id": A_UUID}).event_id == UUID(A_UUID)
    for field, value, kind in [
        ("event_id", "{" + A_UUID + "}", "uuid_format"),
        ("occurred_at", "2026-11-17T06:15:00", "timestamp_offset"),
        ("occurred_at", "2026-11-17", "timestamp_format"),
        ("schema_version", True, "integer_only"),
    ]:
        with pytest.raises(ValidationError) as info:
            WarrantExecuted.model_validate({**raw, field: value})
        assert [e["type"] for e in info.value.errors()] == [kind]


def test_offences_list_is_bounded_and_items_named_by_index() -> None:
    raw = example_events("arrest_made")[0]
    raw["payload"]["offences"] = []
    assert paths(raw) == {"payload.offences"}
    raw["payload"]["offences"] = ["ok"] * 21
    assert paths(raw) == {"payload.offences"}
    raw["payload"]["offences"] = ["ok", ""]
    assert paths(raw) == {"payload.offences.1"}


def test_not_json_and_not_an_object() -> None:
    assert errors_of(b"{")[0]["path"] == ""
    assert errors_of(b"[1, 2]") == [{"path": "", "message": "must be a JSON object"}]
    assert errors_of({"when": datetime(2026, 1, 1, tzinfo=UTC), 1: 2})[0]["path"] == ""


def test_future_occurred_at_refused_beyond_max_future() -> None:
    raw = example_events()[0]
    at = datetime.fromisoformat(raw["occurred_at"])
    parse_event(raw, now=at - timedelta(minutes=5))
    assert paths(raw, now=at - timedelta(minutes=5, seconds=1)) == {"occurred_at"}
    parse_event(raw, now=at - timedelta(hours=1), max_future=timedelta(hours=1))
    with pytest.raises(ValueError, match="aware"):
        parse_event(raw, now=datetime(2026, 1, 1))  # noqa: DTZ001


def test_contract_error_is_readable() -> None:
    with pytest.raises(ContractError, match=r"payload\.substance: field required"):
        raw = example_events("item_seized")[0]
        del raw["payload"]["substance"]
        parse_event(raw)


def test_item_seized_payload_keeps_its_item_type() -> None:
    event = parse_event(cash())
    assert isinstance(event, ItemSeized)
    assert event.payload.item == "cash"


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": {"é": 1.5, "c": [1, "x"]}}) == (
        '{"a":{"c":[1,"x"],"é":1.5},"b":1}'.encode()
    )
    data = json.loads(canonical_json({"x": 0.1 + 0.2, "y": 1e-7}))
    assert canonical_json(json.loads(canonical_json(data))) == canonical_json(data)


def test_content_hash_ignores_server_fields() -> None:
    body = event_to_dict(parse_event(example_events()[0]))
    stamped = {**body, "recorded_at": "2026-11-17T06:16:00+00:00", "principal": "pc-4101"}
    restamped = {**stamped, "recorded_at": "2026-11-17T06:19:00+00:00"}
    assert content_hash(body) == content_hash(stamped) == content_hash(restamped)
    changed = {**body, "operation_id": "another-operation"}
    assert content_hash(changed) != content_hash(body)


def test_chain_hash_links_to_previous() -> None:
    body = {"seq": 1, "event": {"a": 1}}
    first = chain_hash(body, GENESIS_HASH)
    assert len(first) == 64 and first != chain_hash(body, first)
    import hashlib

    expected = hashlib.sha256(b'{"event":{"a":1},"seq":1}' + GENESIS_HASH.encode()).hexdigest()
    assert first == expected
