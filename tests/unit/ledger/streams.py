"""Generated event streams for the fold rule: several operations, resends, conflicts, voids.

Shared by the planner's property test (tests/unit/ledger) and the PostgreSQL one
(tests/integration/ledger).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import note
from hypothesis import strategies as st

from schemas.examples import example_events
from services.common.wire import Submission, encode_submission
from services.ledger.records import PreparedRecord, prepare

Stream = list[tuple[dict[str, Any], datetime]]

OPS = ("op-a", "op-b", "op-c")
KINDS = ("warrant_executed", "arrest_made", "school_visited", "item_seized")
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


@st.composite
def streams(draw: st.DrawFn) -> Stream:
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


def describe(stream: Stream) -> str:
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


def raw_records(stream: Stream) -> list[tuple[int, int, bytes]]:
    """One submission per event, each operation in its own partition, offsets in order."""
    partition_of = {op: i for i, op in enumerate(sorted({e["operation_id"] for e, _ in stream}))}
    raw = []
    next_offset: dict[int, int] = {}
    for event, recorded in stream:
        op = event["operation_id"]
        partition = partition_of[op]
        offset = next_offset.get(partition, 0)
        next_offset[partition] = offset + 1
        sub = Submission(op, recorded.isoformat(), "pc-1", [event])
        raw.append((partition, offset, encode_submission(sub)))
    return raw


def as_records(stream: Stream) -> list[PreparedRecord]:
    batch = prepare(raw_records(stream))
    assert not batch.poison, batch.poison
    return batch.records


def cut(items: list[Any], cuts: list[int]) -> Iterator[list[Any]]:
    """``items`` in consecutive batches, cut at the given positions (those in range)."""
    bounds = sorted({0, len(items), *(c for c in cuts if c < len(items))})
    for start, end in zip(bounds, bounds[1:], strict=False):
        yield items[start:end]


def renamed(stream: Stream, prefix: str) -> Stream:
    """The stream with operations and event ids of its own (for a shared database)."""
    ns = uuid.uuid5(uuid.NAMESPACE_URL, prefix)

    def new_id(old: str) -> str:
        return str(uuid.uuid5(ns, old))

    out = []
    for e, recorded in stream:
        e = {
            **e,
            "event_id": new_id(e["event_id"]),
            "operation_id": f"{prefix}-{e['operation_id']}",
        }
        if e["type"] == "event_voided":
            e["payload"] = {
                **e["payload"],
                "voided_event_id": new_id(e["payload"]["voided_event_id"]),
            }
        out.append((e, recorded))
    return out
