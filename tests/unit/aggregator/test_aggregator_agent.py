"""The agent's pure parts: chunking, retry until commit, dead-lettering once, readiness."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from schemas.examples import example_events
from services.aggregator import metrics
from services.aggregator.agent import Aggregator, Chunk, GroupCommit, chunks
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


class FakeStream:
    """noack_take yields the given takes (the agent's `bounded_take` is replaced by it in the
    tests below); acks are recorded with the time they happened."""

    def __init__(self, takes: list[list[Any]], expected_acks: int) -> None:
        self.takes = takes
        self.acks: list[tuple[int, float]] = []
        self.yielded_at: list[float] = []
        self.expected = expected_acks
        self.all_acked = asyncio.Event()

    async def noack_take(self, max_: int, within: float) -> Any:
        for events in self.takes:
            await asyncio.sleep(0.01)  # a take waits for records (faust's `within`)
            self.yielded_at.append(time.monotonic())
            yield events
        await asyncio.wait_for(self.all_acked.wait(), 5)

    async def ack(self, event: Any) -> None:
        self.acks.append((event.message.offset, time.monotonic()))
        if len(self.acks) == self.expected:
            self.all_acked.set()


@pytest.fixture
def take_bounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The agent takes from FakeStream.noack_take; the byte bound it asks for is recorded."""
    bounds: list[int] = []

    def fake_take(stream: FakeStream, max_: int, within: float, *, max_bytes: int) -> Any:
        bounds.append(max_bytes)
        return stream.noack_take(max_, within)

    monkeypatch.setattr("services.aggregator.agent.bounded_take", fake_take)
    return bounds


async def test_takes_are_decoded_and_gathered_while_a_commit_is_in_flight_acks_follow_commits(
    aggregator: Aggregator, take_bounds: list[int]
) -> None:
    commits: list[tuple[list[int], float, float]] = []

    async def commit(chunk: Chunk) -> BatchResult:
        started = time.monotonic()
        await asyncio.sleep(0.05)  # the transaction, in PostgreSQL
        commits.append(([e.message.offset for e in chunk.events], started, time.monotonic()))
        return BatchResult()

    aggregator.commit = commit  # type: ignore[method-assign]
    takes = [[record(0, 0, 5), record(0, 1, 5)], [record(0, 2, 5)], [record(0, 3, 5)]]
    stream = FakeStream(takes, expected_acks=4)
    await aggregator._agent(stream)  # type: ignore[arg-type]
    # log order, one transaction at a time; the two takes that arrived while the first one
    # committed go together into the next transaction (group commit)
    assert [offsets for offsets, _, _ in commits] == [[0, 1], [2, 3]]
    assert all(a[2] <= b[1] for a, b in itertools.pairwise(commits))  # never two at once
    assert [offset for offset, _ in stream.acks] == [0, 1, 2, 3]
    ended = {o: end for offsets, _, end in commits for o in offsets}
    assert all(at >= ended[offset] for offset, at in stream.acks)  # acked after its commit
    # the second take was taken and decoded while the first one's commit was in flight
    assert stream.yielded_at[1] < commits[0][2]
    # a take is bounded in bytes: a quarter of the in-flight budget (the buffer has half, the
    # group commit the last quarter)
    assert take_bounds == [aggregator.settings.inflight_max_bytes // 4]


async def test_a_committer_that_dies_stops_the_worker(
    aggregator: Aggregator, monkeypatch: pytest.MonkeyPatch, take_bounds: list[int]
) -> None:
    killed: list[int] = []
    monkeypatch.setattr("services.aggregator.agent.os.kill", lambda pid, sig: killed.append(sig))

    async def commit(chunk: Chunk) -> BatchResult:
        return BatchResult()

    async def broken_ack(fake: FakeStream, chunk: Chunk) -> None:
        fake.all_acked.set()  # the take loop may end now: the committer has failed
        raise RuntimeError("ack failed")

    aggregator.commit = commit  # type: ignore[method-assign]
    aggregator._ack = broken_ack  # type: ignore[method-assign]
    stream = FakeStream([[record(0, 0, 1)]], expected_acks=1)
    await aggregator._agent(stream)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the done callback runs on the next turn of the loop
    assert killed and "committer failed: RuntimeError: ack failed" in aggregator.health.fatal


def piece(offset: int, nbytes: int, size: int = 1) -> Chunk:
    return Chunk(events=[SimpleNamespace(offset=offset)], size=size, nbytes=nbytes)


async def test_group_commit_holds_at_most_its_byte_bound_committing_and_gathered_together() -> None:
    pending = GroupCommit(max_events=100, max_bytes=1_000)
    committer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await pending.add(piece(0, 1_500), committer)  # bigger than the bound: admitted alone
    first = await pending.take()
    assert [e.offset for e in first.events] == [0] and pending.committing_bytes == 1_500
    second = asyncio.ensure_future(pending.add(piece(1, 100), committer))
    await asyncio.sleep(0.01)
    assert not second.done()  # 1,500 committing + 100 > 1,000: waits for the commit
    pending.done()
    await asyncio.wait_for(second, 1)
    await pending.add(piece(2, 800), committer)  # 100 + 800 gathered: within the bound
    third = asyncio.ensure_future(pending.add(piece(3, 200), committer))
    await asyncio.sleep(0.01)
    assert not third.done()  # 900 + 200 > 1,000
    taken = await pending.take()  # the gathered 900 now commit; still held until done
    assert [e.offset for e in taken.events] == [1, 2]
    await asyncio.sleep(0.01)
    assert not third.done()
    pending.done()
    await asyncio.wait_for(third, 1)
    assert [e.offset for e in (await pending.take()).events] == [3]


async def test_group_commit_waits_for_nobody_when_its_committer_has_died() -> None:
    pending = GroupCommit(max_events=100, max_bytes=1_000)
    committer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await pending.add(piece(0, 900), committer)
    blocked = asyncio.ensure_future(pending.add(piece(1, 900), committer))
    await asyncio.sleep(0.01)
    committer.set_exception(RuntimeError("commit broke"))
    with pytest.raises(RuntimeError, match="commit broke"):
        await asyncio.wait_for(blocked, 1)


class Refused(Exception):
    sqlstate = "22P05"  # untranslatable character: the data itself, for ever


class RefusingWriter:
    """Refuses record (0, 1) whenever it is written as a record; recording it as poison fails
    transiently the first time (the connection drops after the DLQ topic has it)."""

    def __init__(self) -> None:
        self.stored: dict[int, int] = {}
        self.poison_failures = 1

    async def write(self, batch: PreparedBatch, **_: Any) -> BatchResult:
        records = [r for r in batch.records if r.offset > self.stored.get(r.partition, -1)]
        poison = [p for p in batch.poison if p.offset > self.stored.get(p.partition, -1)]
        if any((r.partition, r.offset) == (0, 1) for r in records):
            raise Refused("invalid byte sequence")
        if poison and self.poison_failures:
            self.poison_failures -= 1
            raise ConnectionError("connection lost")
        for p, o in batch.last_offsets.items():
            self.stored[p] = max(o, self.stored.get(p, -1))
        return BatchResult(
            applied=sum(len(r.events) for r in records), poison=poison,
            last_offsets=batch.last_offsets,
        )  # fmt: skip


async def test_a_refused_record_is_dead_lettered_once_when_its_partition_is_held_meanwhile(
    aggregator: Aggregator,
) -> None:
    """The DLQ topic gets a refused record once, even when recording it failed transiently
    (its partition held and retried): the retry finds it refused again."""
    writer, sent = RefusingWriter(), []

    async def ensure() -> RefusingWriter:
        return writer

    async def send(*args: Any) -> None:
        sent.append(args)

    aggregator._ensure_writer = ensure  # type: ignore[assignment,method-assign]
    aggregator._send = send  # type: ignore[assignment,method-assign]
    aggregator._highwaters = lambda chunk: {}  # type: ignore[method-assign]
    flows: list[tuple[int, bool]] = []

    async def flow(partition: int, *, pause: bool) -> None:
        flows.append((partition, pause))

    aggregator._flow = flow  # type: ignore[method-assign]
    stream = FakeStream([], expected_acks=3)
    (chunk,) = await collect([record(0, 0, 1), record(0, 1, 1), record(0, 2, 1)], 1000)
    async with aggregator.holds(stream) as holds:  # type: ignore[arg-type]
        await holds.commit(chunk)
        assert list(holds.holds) == [0]  # recording the poison failed: the partition waits
        await asyncio.wait_for(stream.all_acked.wait(), 5)
    assert [offset for offset, _ in stream.acks] == [0, 1, 2]
    assert writer.stored == {0: 2} and flows == [(0, True), (0, False)]
    assert len(sent) == 1, f"dead-lettered {len(sent)} times"
