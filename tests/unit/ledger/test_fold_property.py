"""The planner, batch by batch with its state carried as the database holds it, equals `fold`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.parsing import parse_event
from schemas.tally import fold
from services.ledger.plan import Head, Plan, fold_state, plan_batch
from services.ledger.records import PreparedRecord
from tests.unit.ledger.streams import OPS, Stream, as_records, cut, streams


class FakeLedger:
    """The tables the writer keeps between batches, and its ``lookup`` of the rows a batch touches.

    Rows are kept as the SQL stores and returns them, so the planner's state between batches is
    rebuilt from rows exactly as `BatchWriter` rebuilds it (`fold_state`).
    """

    def __init__(self) -> None:
        self.heads: dict[str, Head] = {}
        self.events: dict[uuid.UUID, dict[str, Any]] = {}  # event row with its own contribution
        self.voids: dict[uuid.UUID, dict[str, Any]] = {}  # by void_event_id
        self.rows: list[tuple[str, Any, int, datetime]] = []  # (op, row key, delta, recorded_at)

    def lookup(self, ids: set[uuid.UUID]) -> list[dict[str, Any]]:
        out = [{"is_event": True, **self.events[i]} for i in ids if i in self.events]
        for v in self.voids.values():
            if v["target"] in ids:
                ve = self.events[v["void_event_id"]]
                out.append(
                    {"is_event": False, "id": v["target"], "operation_id": v["operation_id"],
                     "recorded_at": ve["recorded_at"], "void_event_id": v["void_event_id"],
                     "applied": v["applied"], "seq": ve["seq"]}
                )  # fmt: skip
        return out

    def apply(self, records: list[PreparedRecord]) -> None:
        ids = {e.event_id for r in records for e in r.events}
        ids |= {e.void_target for r in records for e in r.events if e.void_target}
        plan = plan_batch(records, self.heads, fold_state(self.lookup(ids)))
        self.store(plan)

    def store(self, plan: Plan) -> None:
        self.heads.update(plan.heads)
        own = {r.event_id: r.c for r in plan.contributions}
        for ce in plan.events:
            e = ce.event
            c = own.get(e.event_id)
            self.events[e.event_id] = {
                "id": e.event_id, "content_hash": e.content_hash, "operation_id": e.operation_id,
                "type": e.type, "occurred_at": e.occurred_at, "recorded_at": e.recorded_at,
                "void_target": e.void_target, "seq": ce.seq,
                "metric": c and c.metric, "detail": c and c.detail, "area": c and c.area,
                "unit": c and c.unit, "day": c and c.day, "delta": c and c.delta,
            }  # fmt: skip
        for v in plan.new_voids.values():
            self.voids[v.void_event_id] = {
                "void_event_id": v.void_event_id, "target": v.target_event_id,
                "operation_id": v.operation_id, "applied": v.applied,
            }  # fmt: skip
        for void_id in plan.applied_held_voids:
            self.voids[void_id]["applied"] = True
        for target in {v["target"] for v in self.voids.values()}:  # the partial unique index
            applied = [v for v in self.voids.values() if v["target"] == target and v["applied"]]
            assert len(applied) <= 1, applied
        for r in plan.contributions:
            self.rows.append((r.operation_id, r.c.key, r.c.delta, r.recorded_at))

    def totals(self, op: str) -> dict[Any, int]:
        out: dict[Any, int] = {}
        for o, key, delta, _ in self.rows:
            if o == op:
                out[key] = out.get(key, 0) + delta
        return {k: v for k, v in out.items() if v}


@settings(max_examples=400, deadline=None)
@given(stream=streams(), cuts=st.lists(st.integers(0, 30), max_size=6))
def test_planner_batch_by_batch_equals_the_fold(stream: Stream, cuts: list[int]) -> None:
    ledger = FakeLedger()
    for batch in cut(as_records(stream), cuts):
        ledger.apply(batch)
    parsed = [parse_event(e) for e, _ in stream]
    for op in OPS:
        expected = fold(e for e in parsed if e.operation_id == op).rows
        assert ledger.totals(op) == expected, op


@settings(max_examples=200, deadline=None)
@given(stream=streams())
def test_a_known_at_read_never_shows_a_negative_count(
    stream: Stream,
) -> None:
    ledger = FakeLedger()
    ledger.apply(as_records(stream))
    for t in sorted({r for *_, r in ledger.rows}):
        known: dict[Any, int] = {}
        for op, key, delta, recorded in ledger.rows:
            if recorded <= t:
                known[(op, key)] = known.get((op, key), 0) + delta
        assert min(known.values(), default=0) >= 0, t
