"""The batch plan: chain, duplicates, conflicts and voids, against the contract's own fold."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.canonical import GENESIS_HASH, chain_hash, content_hash
from schemas.examples import example_events
from schemas.parsing import parse_event
from schemas.tally import Fact, FoldState, Void, fold
from services.common.wire import Submission, encode_submission
from services.ledger.plan import Head, Plan, plan_batch
from services.ledger.records import PreparedRecord, prepare

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


def records(*subs: list[dict[str, Any]], recorded: str = RECORDED) -> list[PreparedRecord]:
    raw = []
    for offset, events in enumerate(subs):
        op = events[0]["operation_id"]
        raw.append((0, offset, encode_submission(Submission(op, recorded, "pc-1", events))))
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
    plan = plan_batch(records([a, b]), {})
    first, second = plan.events
    body_a = {**a, "recorded_at": RECORDED, "principal": "pc-1"}
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert first.hash == chain_hash(body_a, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert plan.heads[OP] == Head(2, second.hash)


def test_chain_continues_from_the_stored_head() -> None:
    plan = plan_batch(records([fresh("warrant_executed")]), {OP: Head(41, "ab" * 32)})
    assert (plan.events[0].seq, plan.events[0].prev_hash) == (42, "ab" * 32)


def test_same_id_same_content_is_a_duplicate_and_not_counted() -> None:
    a = fresh("warrant_executed")
    plan = plan_batch(records([a], [a], [a]), {})
    assert (len(plan.events), plan.duplicates, totals(plan)) == (1, 2, {"warrants_executed": 1})


def test_same_id_other_content_is_a_conflict_and_not_counted() -> None:
    a = fresh("item_seized", payload={"item": "mobile_phone", "quantity": 1})
    b = {**a, "payload": {"item": "mobile_phone", "quantity": 50}}
    plan = plan_batch(records([a], [b]), {})
    assert totals(plan) == {"mobile_phones_seized": 1}
    assert [c.stored_content_hash for c in plan.conflicts] == [content_hash(a)]


def test_an_event_already_in_the_ledger_is_a_duplicate_or_conflict() -> None:
    a = fresh("warrant_executed")
    a_id = uuid.UUID(a["event_id"])
    fact = Fact(a_id, OP, a["type"], None, None, datetime.now(UTC), None, content_hash(a))

    def known() -> FoldState:
        return FoldState(events={a_id: fact})

    assert plan_batch(records([a]), {}, known()).duplicates == 1
    other = {**a, "payload": {"warrant_ref": "W-other"}}
    assert len(plan_batch(records([other]), {}, known()).conflicts) == 1


def test_void_after_target_cancels_it_and_void_twice_is_a_no_op() -> None:
    a = fresh("item_seized", payload={"item": "drug_wrap", "substance": "crack", "quantity": 7})
    plan = plan_batch(records([a], [void_of(a)], [void_of(a)]), {})
    assert totals(plan) == {}
    assert len(plan.events) == 3  # every void stays in history
    assert [v.applied for v in plan.new_voids.values()] == [True]  # the second: no row


def test_void_before_target_is_held_then_applied_in_the_same_batch() -> None:
    a = fresh("warrant_executed")
    plan = plan_batch(records([void_of(a)], [a]), {})
    assert totals(plan) == {}
    assert list(plan.new_voids.values())[0].applied is True


def test_held_void_from_an_earlier_batch_is_applied_when_the_target_arrives() -> None:
    a = fresh("warrant_executed")
    void_id = uuid.uuid4()
    held = FoldState(held={uuid.UUID(a["event_id"]): [Void(void_id, OP, None)]})
    plan = plan_batch(records([a]), {}, held)
    assert totals(plan) == {}
    assert plan.applied_held_voids == [void_id]


def test_void_of_a_void_or_of_another_operation_changes_nothing() -> None:
    a = fresh("warrant_executed")
    v = void_of(a)
    other = fresh("school_visited", operation_id="op-other")
    plan = plan_batch(records([a], [v], [void_of(v)], [other], [void_of(other)]), {})
    assert totals(plan) == {"schools_visited": 1}


def test_any_order_of_repeated_events_gives_the_contract_fold() -> None:
    rng = random.Random(7)
    base = [fresh(e["type"], payload=e["payload"]) for e in example_events()[:12]]
    voids = [void_of(base[0]), void_of(base[4]), void_of(base[4])]
    events = base + voids
    for _ in range(20):
        stream = events * 3
        rng.shuffle(stream)
        plan = plan_batch(records(*[[e] for e in stream]), {})
        assert totals(plan) == expected(events)
        assert len(plan.events) == len(events)


def test_a_void_from_another_operation_held_first_does_not_block_the_owners_void() -> None:
    a = fresh("warrant_executed")
    foreign = void_of(a, operation_id="op-other")
    plan = plan_batch(records([foreign], [a], [void_of(a)]), {})
    assert totals(plan) == {}
    held, applied = plan.new_voids.values()
    assert (held.operation_id, held.applied, applied.operation_id, applied.applied) == (
        "op-other",
        False,
        OP,
        True,
    )


def test_the_removal_row_carries_the_later_recorded_at_in_either_order() -> None:
    a = fresh("warrant_executed")
    for first, second in ([a], [void_of(a)]), ([void_of(a)], [a]):
        early = records(first, recorded="2026-11-20T10:00:00+00:00")
        late = records(second, recorded="2026-11-20T09:00:00+00:00")
        plan = plan_batch([*early, *late], {})
        removal = next(r for r in plan.contributions if r.c.delta < 0)
        assert removal.recorded_at.isoformat() == "2026-11-20T10:00:00+00:00"
        assert removal.occurred_at.isoformat() == a["occurred_at"].replace("Z", "+00:00")
