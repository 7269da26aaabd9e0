"""Decoding records: valid submissions, and poison with a reason that says what is wrong."""

from __future__ import annotations

import uuid

import orjson
import pytest

from schemas.examples import example_events
from services.common.wire import Submission, encode_submission
from services.ledger.records import Poison, PreparedRecord, prepare, prepare_record


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
