"""Decoding records: valid submissions, and poison with a reason that says what is wrong."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import EventParser, UpcasterRegistry, parse_event
from schemas.canonical import canonical_json, content_hash
from schemas.events import FIELD_EVENT_ADAPTER
from schemas.examples import example_events
from schemas.tally import contribution
from services.common.wire import Submission, decode_submission, encode_submission
from services.ledger.records import Poison, PreparedRecord, prepare, prepare_record
from tests.unit.test_contract_properties import COUNTED_KINDS, raw_events, timestamps


def sub_bytes(events: list[dict[str, object]], op: str = "op-records") -> bytes:
    return encode_submission(Submission(op, "2026-11-20T10:00:00Z", "pc-1", events))


def an_event(op: str = "op-records") -> dict[str, object]:
    e = example_events("warrant_executed")[0]
    e.update({"event_id": str(uuid.uuid4()), "operation_id": op})
    return e


def test_a_valid_submission_keeps_its_events_in_order_with_their_positions() -> None:
    events = [an_event(), an_event()]
    item = prepare_record(3, 17, sub_bytes(events))
    assert isinstance(item, PreparedRecord)
    assert [(e.partition, e.offset, e.index) for e in item.events] == [(3, 17, 0), (3, 17, 1)]
    assert [str(e.event_id) for e in item.events] == [e["event_id"] for e in events]
    assert item.events[0].contribution is not None
    assert item.events[0].contribution.metric == "warrants_executed"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00\x01 not json", "not JSON"),
        (None, "empty record value"),
        (orjson.dumps({"v": 99}), "unsupported wire version"),
    ],
)
def test_undecodable_records_are_poison(value: bytes | None, reason: str) -> None:
    item = prepare_record(0, 5, value)
    assert isinstance(item, Poison)
    assert reason in item.reason


def test_a_contract_violation_is_poison_naming_the_field() -> None:
    bad = an_event()
    bad["payload"] = {"warrant_ref": "W-1", "colour": "red"}
    item = prepare_record(0, 1, sub_bytes([an_event(), bad]))
    assert isinstance(item, Poison)
    assert "event 1" in item.reason and "payload.colour" in item.reason


def test_an_event_of_another_operation_is_poison() -> None:
    item = prepare_record(0, 1, sub_bytes([an_event("op-somewhere-else")]))
    assert isinstance(item, Poison) and "another operation" in item.reason


def test_batch_offsets_count_poison_as_applied() -> None:
    batch = prepare([(0, 1, sub_bytes([an_event()])), (0, 2, b"junk"), (4, 9, b"junk")])
    assert batch.last_offsets == {0: 2, 4: 9}
    assert len(batch.records) == 1 and len(batch.poison) == 2


# -- what is stored and hashed is what the wire's stored bodies say, byte for byte -------------


def stored_body(client: dict[str, Any], recorded_at: str, principal: str) -> bytes:
    sub = Submission("op", recorded_at, principal, [client])
    return canonical_json(sub.stored_bodies()[0])


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(raw_events(COUNTED_KINDS + ("event_voided",)), min_size=1, max_size=3),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=40),
    timestamps(),
    st.sampled_from([None, -0.0, 0.0, 0.5, -1]),
)
def test_stored_bytes_and_hashes_are_those_of_the_stored_body(
    events: list[dict[str, Any]], principal: str, recorded_at: str, lat: float | None
) -> None:
    op = events[0]["operation_id"]
    for e in events:
        e["operation_id"] = op
        if lat is not None:
            e["location"]["lat"] = lat  # -0.0 is stored (and hashed) as 0.0
    value = encode_submission(Submission(op, recorded_at, principal, events))
    sub = decode_submission(value)
    item = prepare_record(0, 1, value)
    assert isinstance(item, PreparedRecord), item
    for prepared, client, body in zip(item.events, sub.events, sub.stored_bodies(), strict=True):
        assert prepared.body_json == canonical_json(body)
        assert prepared.content_hash == content_hash(client) == content_hash(body)
        assert prepared.principal == principal
        event = parse_event(client)
        assert (prepared.event_id, prepared.occurred_at, prepared.contribution) == (
            event.event_id,
            event.occurred_at,
            contribution(event),
        )
        assert b'"lat":-0.0' not in prepared.body_json


def test_an_upcast_event_is_stored_as_sent_with_its_old_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A version 0 with a top-level key that sorts among the server's fields: the client's bytes
    # with the server's fields put in before schema_version would not be its canonical body.
    registry = UpcasterRegistry()

    @registry.register("warrant_executed", 0)
    def _drop_priority(raw: dict[str, Any]) -> dict[str, Any]:
        del raw["priority"]
        return raw

    parser = EventParser(FIELD_EVENT_ADAPTER, registry)
    monkeypatch.setattr("services.ledger.records.parse_event", parser.parse)
    old = {**an_event(), "schema_version": 0, "priority": "high"}
    item = prepare_record(0, 1, sub_bytes([old]))
    assert isinstance(item, PreparedRecord), item
    [prepared] = item.events
    assert prepared.schema_version == 1
    assert prepared.body_json == stored_body(old, "2026-11-20T10:00:00Z", "pc-1")
    assert b'"principal":"pc-1","priority":"high","recorded_at":' in prepared.body_json
    assert prepared.content_hash == content_hash(old)


def test_a_refusal_names_fields_in_the_order_the_client_sent_them() -> None:
    bad = an_event()
    bad["zeta"] = 1
    bad["alpha"] = 2
    item = prepare_record(0, 1, sub_bytes([bad]))
    assert isinstance(item, Poison)
    assert item.reason == (
        "event 0 violates the contract: zeta: unknown field; alpha: unknown field"
    )
