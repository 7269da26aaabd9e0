"""The planner, batch by batch with its state carried as the database holds it, equals `fold`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, note, settings
from hypothesis import strategies as st

from schemas.examples import example_events
from schemas.parsing import parse_event
from schemas.tally import fold
from services.common.wire import Submission, encode_submission
from services.ledger.plan import Head, Plan, fold_state, plan_batch
from services.ledger.records import PreparedRecord, prepare

OPS = ("op-a", "op-b", "op-c")
KINDS = ("warrant_executed", "arrest_made", "school_visited", "item_seized")
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


@st.composite
def streams(draw: st.DrawFn) -> list[tuple[dict[str, Any], datetime]]:
    """Events over several operations in arrival order, each with the time ingest recorded it."""
    pool: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 6))):
        e = example_events(draw(st.sampled_from(KINDS)))[0]
        e.update(event_id=str(uuid.UUID(int=n + 1)), operation_id=draw(st.sampled_from(OPS)))
        pool.append(e)
    for n in range(draw(st.integers(0, 6))):  # voids of events or of voids, own op or another
        target = draw(st.sampled_from(pool))
        op = draw(st.sampled_from([target["operation_id"], *OPS]))
        v = example_events("event_voided")[0]
        v.update(event_id=str(uuid.UUID(int=100 + n)), operation_id=op)
        v["payload"]["voided_event_id"] = target["event_id"]
        pool.append(v)
    stream = list(pool)
    for e in draw(st.lists(st.sampled_from(pool), max_size=4)):  # resends
        stream.append(e)
    for e in draw(st.lists(st.sampled_from(pool), max_size=2)):  # conflicting resends
        stream.append({**e, "source": {"device_id": "tablet-other", "app_version": "9"}})
    stream = draw(st.permutations(stream))
    minutes = st.integers(0, 600)
    out = [(e, T0 + timedelta(minutes=draw(minutes))) for e in stream]
    note(describe(out))
    return out


def describe(stream: list[tuple[dict[str, Any], datetime]]) -> str:
    """The stream in short: ``op-a:1 warrant`` or ``op-b:101 void(1)``, with resends marked."""
    lines = []
    for e, recorded in stream:
        what = e["type"].split("_")[0]
        if e["type"] == "event_voided":
            what = f"void({uuid.UUID(e['payload']['voided_event_id']).int})"
        other = " (changed)" if e["source"]["device_id"] == "tablet-other" else ""
        lines.append(
            f"{e['operation_id']}:{uuid.UUID(e['event_id']).int} {what}{other} @{recorded:%H:%M}"
        )
    return "; ".join(lines)


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


def as_records(
    stream: list[tuple[dict[str, Any], datetime]],
) -> list[PreparedRecord]:
    """One submission per event, each operation in its own partition, offsets in order."""
    raw = []
    next_offset: dict[int, int] = {}
    for event, recorded in stream:
        op = event["operation_id"]
        partition = OPS.index(op)
        offset = next_offset.get(partition, 0)
        next_offset[partition] = offset + 1
        sub = Submission(op, recorded.isoformat(), "pc-1", [event])
        raw.append((partition, offset, encode_submission(sub)))
    batch = prepare(raw)
    assert not batch.poison, batch.poison
    return batch.records


@settings(max_examples=400, deadline=None)
@given(stream=streams(), cuts=st.lists(st.integers(0, 30), max_size=6))
def test_planner_batch_by_batch_equals_the_fold(
    stream: list[tuple[dict[str, Any], datetime]], cuts: list[int]
) -> None:
    records = as_records(stream)
    ledger = FakeLedger()
    bounds = sorted({0, len(records), *(c for c in cuts if c < len(records))})
    for start, end in zip(bounds, bounds[1:], strict=False):
        ledger.apply(records[start:end])
    parsed = [parse_event(e) for e, _ in stream]
    for op in OPS:
        expected = fold(e for e in parsed if e.operation_id == op).rows
        assert ledger.totals(op) == expected, op


@settings(max_examples=200, deadline=None)
@given(stream=streams())
def test_a_known_at_read_never_shows_a_negative_count(
    stream: list[tuple[dict[str, Any], datetime]],
) -> None:
    ledger = FakeLedger()
    ledger.apply(as_records(stream))
    for t in sorted({r for *_, r in ledger.rows}):
        known: dict[Any, int] = {}
        for op, key, delta, recorded in ledger.rows:
            if recorded <= t:
                known[(op, key)] = known.get((op, key), 0) + delta
        assert min(known.values(), default=0) >= 0, t
