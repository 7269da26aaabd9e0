"""The rebuild's bulk writer keeps in memory what live reads back: the parts that need no
database (tree frontiers, the fold state handed to each batch)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from schemas.tally import Fact, FoldState, Void
from services.audit.bulk import BulkWriter
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
