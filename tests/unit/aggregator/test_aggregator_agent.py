"""The agent's pure parts: chunking, retry until commit, dead-lettering once, readiness."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from schemas.examples import example_events
from services.aggregator import metrics
from services.aggregator.agent import Aggregator, Chunk, chunks
from services.aggregator.app import create_app
from services.aggregator.health import HealthState
from services.aggregator.settings import AggregatorSettings
from services.common.wire import Submission, encode_submission
from services.ledger.records import PreparedBatch
from services.ledger.writer import BatchResult


def record(partition: int, offset: int, n_events: int) -> SimpleNamespace:
    """A stand-in for a faust event: only ``message`` is read."""
    events = []
    for _ in range(n_events):
        e = example_events("warrant_executed")[0]
        e.update({"event_id": str(uuid.uuid4()), "operation_id": "op-agent"})
        events.append(e)
    value = encode_submission(Submission("op-agent", "2026-11-20T10:00:00Z", "pc", events))
    message = SimpleNamespace(partition=partition, offset=offset, value=value, key=b"op-agent")
    return SimpleNamespace(message=message)


async def collect(events: list[Any], max_events: int) -> list[Chunk]:
    return [c async for c in chunks(events, max_events)]


async def test_chunks_cut_by_events_in_order() -> None:
    events = [record(0, i, 40) for i in range(5)]
    got = await collect(events, 100)
    assert [c.size for c in got] == [120, 80]
    assert [e.message.offset for c in got for e in c.events] == [0, 1, 2, 3, 4]


async def test_a_poison_record_counts_as_one_and_keeps_its_key() -> None:
    bad = SimpleNamespace(message=SimpleNamespace(partition=1, offset=9, value=b"{", key=b"k"))
    (chunk,) = await collect([record(1, 8, 2), bad], 100)
    assert chunk.size == 3
    assert chunk.keys == {(1, 9): b"k"}
    assert [p.offset for p in chunk.batch.poison] == [9]


class FlakyWriter:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def write(self, batch: PreparedBatch, **_: Any) -> BatchResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database away")
        return BatchResult(applied=batch.event_count, last_offsets=batch.last_offsets)


@pytest.fixture
def aggregator(tmp_path: Path) -> Aggregator:
    settings = AggregatorSettings(
        data_dir=tmp_path, retry_initial_s=0.001, retry_max_s=0.002, topic="t-unit"
    )
    return Aggregator(create_app(settings), settings)


async def test_a_failing_batch_is_retried_until_it_commits_and_dead_letters_once(
    aggregator: Aggregator,
) -> None:
    writer, sent = FlakyWriter(failures=3), []

    async def ensure() -> FlakyWriter:
        return writer

    async def send(*args: Any) -> None:
        sent.append(args)

    aggregator._ensure_writer = ensure  # type: ignore[assignment,method-assign]
    aggregator._send = send  # type: ignore[assignment,method-assign]
    aggregator._highwaters = lambda chunk: {}  # type: ignore[method-assign]
    bad = SimpleNamespace(message=SimpleNamespace(partition=0, offset=2, value=b"x", key=None))
    (chunk,) = await collect([record(0, 1, 3), bad], 1000)
    retries = metrics.BATCH_RETRIES._value.get()
    result = await aggregator.commit(chunk)
    assert (writer.calls, result.applied) == (4, 3)
    assert metrics.BATCH_RETRIES._value.get() - retries == 3
    assert len(sent) == 1 and sent[0][0] == "field-events.dlq"
    assert aggregator.applied == {0: 2}
    assert aggregator.health.problems() == ["consumer not started"]


def test_readiness_reports_retrying_and_stalls_but_not_fresh_lag() -> None:
    h = HealthState(stall_after_s=0.05)
    h.started = True
    assert h.problems() == []
    h.failed(ConnectionError("refused"))
    assert "retrying: ConnectionError: refused" in h.problems()[0]
    h.committed()
    h.last_progress = time.monotonic() - 1
    h.set_lag(3, 10)  # lag that just appeared is not yet a stall
    assert h.problems() == []
    time.sleep(0.06)
    assert h.problems() == ["no progress for 0 s with lag 10"]
    h.set_lag(3, 0)
    assert h.problems() == []
