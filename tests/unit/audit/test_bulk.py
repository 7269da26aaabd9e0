"""The rebuild's bulk writer keeps in memory what live reads back: the parts that need no
database (tree frontiers, the fold state handed to each batch)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from schemas.tally import Contribution, Fact, FoldState, Void
from services.audit.bulk import BulkWriter, MemoryBound
from services.tlog import merkle


def _writer() -> BulkWriter:
    w = BulkWriter.__new__(BulkWriter)  # the pure parts only: no pool
    w.frontiers, w.state = {}, FoldState()
    return w


def _chained(op: str, bodies: list[bytes]) -> list[Any]:
    return [SimpleNamespace(event=SimpleNamespace(operation_id=op, body_json=b)) for b in bodies]


def test_a_tree_grown_batch_by_batch_from_memory_has_the_nodes_of_one_growth() -> None:
    leaves = {op: [f"{op}-{i}".encode() for i in range(37)] for op in ("a", "b")}
    w = _writer()
    rows: list[tuple[str, int, int, bytes]] = []
    for lo, hi in ((0, 5), (5, 6), (6, 32), (32, 37)):  # batches mixing both operations
        batch = _chained("a", leaves["a"][lo:hi]) + _chained("b", leaves["b"][lo:hi])
        new, frontiers = w._grow(batch)
        w.frontiers.update(frontiers)
        rows += new
    for op in ("a", "b"):
        whole = merkle.append(0, [], leaves[op])
        assert sorted(r[1:] for r in rows if r[0] == op) == sorted(whole.nodes)
        assert w.frontiers[op] == (37, [h for _, _, h in whole.frontier])


def test_a_batch_plans_on_copies_so_a_failed_batch_leaves_memory_as_it_was() -> None:
    w = _writer()
    target, void_id, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = datetime(2026, 11, 23, 8, tzinfo=UTC)
    w.state.held[target] = [Void(void_id, "op")]
    w.state.events[other] = Fact(other, "op", "warrant_executed", None, None, at)
    event = SimpleNamespace(event_id=target, void_target=None)
    void = SimpleNamespace(event_id=uuid.uuid4(), void_target=other)
    state = w._state_for([SimpleNamespace(events=(event, void))])  # type: ignore[list-item]
    assert state.held == {target: [Void(void_id, "op")]}
    assert set(state.events) == {other}  # the ids the batch refers to, nothing else
    state.held[target].append(Void(uuid.uuid4(), "op"))
    state.events[target] = Fact(target, "op", "warrant_executed", None, None, at)
    assert w.state.held == {target: [Void(void_id, "op")]}
    assert target not in w.state.events


class _NoPool:
    def acquire(self) -> Any:
        raise AssertionError("a batch past the bound must not reach the database")


def test_a_batch_that_would_pass_the_bound_stops_the_pass_before_anything_is_written() -> None:
    w = BulkWriter(_NoPool(), topic="t", consumer_group="g", schema="s", max_events=3)  # type: ignore[arg-type]
    at = datetime(2026, 11, 23, 8, tzinfo=UTC)
    kept = uuid.uuid4()
    w.state.events[kept] = Fact(kept, "op", "warrant_executed", None, None, at)
    events = tuple(SimpleNamespace(event_id=uuid.uuid4(), void_target=None) for _ in range(3))
    record = SimpleNamespace(partition=0, offset=7, events=events, operation_id="op")
    batch = SimpleNamespace(last_offsets={0: 7}, records=[record], poison=[])
    with pytest.raises(MemoryBound, match="4 events"):
        asyncio.run(w.write(batch))  # type: ignore[arg-type]
    assert list(w.state.events) == [kept] and w.stored == {}  # memory as it was


def test_kept_facts_are_equal_to_the_batch_s_and_share_their_repeated_values() -> None:
    w = BulkWriter(_NoPool(), topic="t", consumer_group="g", schema="s")  # type: ignore[arg-type]
    at = datetime(2026, 11, 23, 8, tzinfo=UTC)
    facts = {}
    for _ in range(2):  # two events decoded apart: equal values, distinct objects
        i = uuid.uuid4()
        c = Contribution(
            "arrests", "18-24", 1, "".join(["North", "ern"]), "".join(["U", "1"]), at.date()
        )
        facts[i] = Fact(i, "".join(["op", "-1"]), "arrest_made", c, None, at, at, "ab" * 32)
    w._keep(facts)
    assert w.state.events == facts
    a, b = w.state.events.values()
    assert a.contribution is b.contribution and a.operation_id is b.operation_id
