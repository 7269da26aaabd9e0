"""The batch plan: chain, duplicates, conflicts and voids, against the contract's own fold."""

from __future__ import annotations

import random
import uuid
from typing import Any

from schemas.canonical import GENESIS_HASH, chain_hash, content_hash
from schemas.examples import example_events
from schemas.parsing import parse_event
from schemas.tally import fold
from services.aggregator.plan import Head, Known, Plan, VoidRow, plan_batch
from services.aggregator.records import PreparedRecord, prepare
from services.common.wire import Submission, encode_submission

OP = "op-unit-test"
RECORDED = "2026-11-20T10:00:00+00:00"


def fresh(kind: str | None = None, **over: Any) -> dict[str, Any]:
    """A valid event of OP with a new event_id (the first example of ``kind``)."""
    e = next(e for e in example_events() if kind is None or e["type"] == kind)
    e.update({"event_id": str(uuid.uuid4()), "operation_id": OP, **over})
    return e


def void_of(target: dict[str, Any], **over: Any) -> dict[str, Any]:
    payload = {"voided_event_id": target["event_id"], "reason": "entered twice"}
    return fresh("event_voided", payload=payload, **over)


def records(*subs: list[dict[str, Any]]) -> list[PreparedRecord]:
    raw = []
    for offset, events in enumerate(subs):
        op = events[0]["operation_id"]
        raw.append((0, offset, encode_submission(Submission(op, RECORDED, "pc-1", events))))
    batch = prepare(raw)
    assert not batch.poison, batch.poison
    return batch.records


def totals(plan: Plan) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_, metric, *_), value in plan.totals.items():
        out[metric] = out.get(metric, 0) + value
    return {k: v for k, v in out.items() if v}


def expected(events: list[dict[str, Any]]) -> dict[str, int]:
    return {k: v for k, v in fold(parse_event(e) for e in events).metrics.items() if v}


def test_new_events_are_chained_from_genesis_with_the_contract_hash() -> None:
    a, b = fresh("warrant_executed"), fresh("arrest_made")
    plan = plan_batch(records([a, b]), {}, {}, {})
    first, second = plan.events
    body_a = {**a, "recorded_at": RECORDED, "principal": "pc-1"}
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert first.hash == chain_hash(body_a, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert plan.heads[OP] == Head(2, second.hash)


def test_chain_continues_from_the_stored_head() -> None:
    plan = plan_batch(records([fresh("warrant_executed")]), {OP: Head(41, "ab" * 32)}, {}, {})
    assert (plan.events[0].seq, plan.events[0].prev_hash) == (42, "ab" * 32)


def test_same_id_same_content_is_a_duplicate_and_not_counted() -> None:
    a = fresh("warrant_executed")
    plan = plan_batch(records([a], [a], [a]), {}, {}, {})
    assert (len(plan.events), plan.duplicates, totals(plan)) == (1, 2, {"warrants_executed": 1})


def test_same_id_other_content_is_a_conflict_and_not_counted() -> None:
    a = fresh("item_seized", payload={"item": "mobile_phone", "quantity": 1})
    b = {**a, "payload": {"item": "mobile_phone", "quantity": 50}}
    plan = plan_batch(records([a], [b]), {}, {}, {})
    assert totals(plan) == {"mobile_phones_seized": 1}
    assert [c.stored_content_hash for c in plan.conflicts] == [content_hash(a)]


def test_an_event_already_in_the_ledger_is_a_duplicate_or_conflict() -> None:
    a = fresh("warrant_executed")
    known = {uuid.UUID(a["event_id"]): Known(content_hash(a), OP, a["type"], None, None)}
    assert plan_batch(records([a]), {}, known, {}).duplicates == 1
    other = {**a, "payload": {"warrant_ref": "W-other"}}
    assert len(plan_batch(records([other]), {}, known, {}).conflicts) == 1


def test_void_after_target_cancels_it_and_void_twice_is_a_no_op() -> None:
    a = fresh("item_seized", payload={"item": "drug_wrap", "substance": "crack", "quantity": 7})
    plan = plan_batch(records([a], [void_of(a)], [void_of(a)]), {}, {}, {})
    assert totals(plan) == {}
    assert len(plan.events) == 3  # every void stays in history
    assert [v[2] for v in plan.new_voids.values()] == [True]


def test_void_before_target_is_held_then_applied_in_the_same_batch() -> None:
    a = fresh("warrant_executed")
    plan = plan_batch(records([void_of(a)], [a]), {}, {}, {})
    assert totals(plan) == {}
    assert list(plan.new_voids.values())[0][2] is True


def test_held_void_from_an_earlier_batch_is_applied_when_the_target_arrives() -> None:
    a = fresh("warrant_executed")
    held = {uuid.UUID(a["event_id"]): VoidRow(uuid.uuid4(), OP, False)}
    plan = plan_batch(records([a]), {}, {}, held)
    assert totals(plan) == {}
    assert plan.applied_held_voids == [uuid.UUID(a["event_id"])]


def test_void_of_a_void_or_of_another_operation_changes_nothing() -> None:
    a = fresh("warrant_executed")
    v = void_of(a)
    other = fresh("school_visited", operation_id="op-other")
    plan = plan_batch(records([a], [v], [void_of(v)], [other], [void_of(other)]), {}, {}, {})
    assert totals(plan) == {"schools_visited": 1}


def test_any_order_of_repeated_events_gives_the_contract_fold() -> None:
    rng = random.Random(7)
    base = [fresh(e["type"], payload=e["payload"]) for e in example_events()[:12]]
    voids = [void_of(base[0]), void_of(base[4]), void_of(base[4])]
    events = base + voids
    for _ in range(20):
        stream = events * 3
        rng.shuffle(stream)
        plan = plan_batch(records(*[[e] for e in stream]), {}, {}, {})
        assert totals(plan) == expected(events)
        assert len(plan.events) == len(events)
