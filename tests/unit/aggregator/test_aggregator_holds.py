"""Per-partition holds: a transient failure waits alone, in log order, acked only after commit."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest

from schemas.examples import example_events
from services.aggregator.agent import Chunk, chunks
from services.aggregator.health import HealthState
from services.aggregator.holds import Holds, partitions_of, split
from services.common.wire import Submission, encode_submission
from services.ledger.writer import BatchResult


def record(partition: int, offset: int, n_events: int = 1, value: bytes | None = None) -> Any:
    """A stand-in for a faust event of operation ``op-<partition>``."""
    op = f"op-{partition}"
    events = []
    for _ in range(n_events):
        e = example_events("warrant_executed")[0]
        e.update({"event_id": str(uuid.uuid4()), "operation_id": op})
        events.append(e)
    if value is None:
        value = encode_submission(Submission(op, "2026-11-20T10:00:00Z", "pc", events))
    message = SimpleNamespace(partition=partition, offset=offset, value=value, key=op.encode())
    return SimpleNamespace(message=message)


async def chunk_of(*events: Any) -> Chunk:
    (chunk,) = [c async for c in chunks(list(events), 10_000)]
    return chunk


def positions(piece: Chunk) -> list[tuple[int, int]]:
    return [(e.message.partition, e.message.offset) for e in piece.events]


class World:
    """A database whose partitions can be blocked, and the consumer's side of things."""

    def __init__(self) -> None:
        self.blocked: set[int] = set()
        self.down = False
        self.written: list[list[tuple[int, int]]] = []  # every committed write, in order
        self.acked: dict[int, list[int]] = defaultdict(list)  # partition -> acked offsets
        self.paused: list[int] = []
        self.resumed: list[int] = []
        self.attempts = 0

    async def pause(self, partition: int) -> None:
        self.paused.append(partition)

    async def resume(self, partition: int) -> None:
        self.resumed.append(partition)

    async def write(self, piece: Chunk) -> BatchResult:
        self.attempts += 1
        await asyncio.sleep(0)
        if self.down or self.blocked & set(partitions_of(piece)):
            raise TimeoutError("canceling statement due to lock timeout")
        self.written.append(positions(piece))
        return BatchResult(applied=piece.batch.event_count, last_offsets=piece.batch.last_offsets)

    async def done(self, piece: Chunk, result: BatchResult, seconds: float) -> None:
        assert seconds >= 0
        for partition, offset in positions(piece):
            self.acked[partition].append(offset)

    def holds(self) -> Holds[Chunk, BatchResult]:
        return Holds(
            write=self.write,
            done=self.done,
            pause=self.pause,
            resume=self.resume,
            retry_initial_s=0.001,
            retry_max_s=0.005,
        )


async def until(condition: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - polls plain state
            await asyncio.sleep(0.001)


async def test_split_cuts_by_partition_keeping_log_order_keys_and_sizes() -> None:
    bad = SimpleNamespace(message=SimpleNamespace(partition=2, offset=7, value=b"{", key=b"k"))
    chunk = await chunk_of(record(1, 5, 3), record(2, 6), bad, record(1, 6, 2))
    parts = split(chunk)
    assert list(parts) == [1, 2]
    assert positions(parts[1]) == [(1, 5), (1, 6)]
    assert [r.offset for r in parts[1].batch.records] == [5, 6]
    assert (parts[1].size, parts[2].size) == (5, 2)
    assert parts[1].nbytes + parts[2].nbytes == chunk.nbytes and parts[2].nbytes > 1
    assert parts[2].keys == {(2, 7): b"k"} and parts[1].keys == {}
    assert [p.offset for p in parts[2].batch.poison] == [7]


async def test_a_chunk_that_commits_is_written_once_whole_and_acked() -> None:
    world = World()
    async with world.holds() as holds:
        await holds.commit(await chunk_of(record(0, 0), record(1, 0), record(0, 1)))
    assert world.written == [[(0, 0), (1, 0), (0, 1)]]
    assert world.acked == {0: [0, 1], 1: [0]}
    assert world.paused == [] and holds.holds == {}


async def test_a_failing_partition_is_held_alone_and_applied_in_order_once_released() -> None:
    world = World()
    world.blocked = {1}
    async with world.holds() as holds:
        await holds.commit(await chunk_of(record(0, 0), record(1, 0), record(2, 0), record(1, 1)))
        # Partitions 0 and 2 committed and acked; 1 is held and paused, nothing of it acked.
        assert world.acked == {0: [0], 2: [0]}
        assert list(holds.holds) == [1] and world.paused == [1]
        await until(lambda: holds.holds[1].retries >= 3)
        detail = holds.detail()[1]
        assert detail["records"] == 2 and "lock timeout" in detail["error"]

        # Later records: partition 0 flows at once; partition 1's join the hold, never written
        # ahead of the held ones.
        await holds.commit(await chunk_of(record(0, 1), record(1, 2)))
        assert world.acked[0] == [0, 1] and 1 not in world.acked
        assert world.paused == [1]  # paused once, when the hold began
        assert not any(p == 1 for write in world.written for p, _ in write)

        world.blocked.clear()
        await until(lambda: not holds.holds)
    assert world.acked[1] == [0, 1, 2]  # once each, in log order
    assert world.resumed == [1]
    writes_of_1 = [w for w in world.written if any(p == 1 for p, _ in w)]
    assert writes_of_1 == [[(1, 0), (1, 1)], [(1, 2)]]


async def test_after_release_the_partition_takes_the_chunk_path_again() -> None:
    world = World()
    world.blocked = {1}
    async with world.holds() as holds:
        await holds.commit(await chunk_of(record(1, 0)))
        assert list(holds.holds) == [1]
        world.blocked.clear()
        await until(lambda: not holds.holds)
        await holds.commit(await chunk_of(record(1, 1), record(0, 0)))
    assert world.written[-1] == [(1, 1), (0, 0)]  # one transaction, as before the hold
    assert world.acked == {1: [0, 1], 0: [0]}


async def test_a_database_down_holds_every_partition_and_each_comes_back() -> None:
    world = World()
    world.down = True
    async with world.holds() as holds:
        await holds.commit(await chunk_of(record(0, 0), record(1, 0), record(2, 0)))
        assert sorted(holds.holds) == [0, 1, 2] and not world.acked
        await until(lambda: all(h.retries >= 1 for h in holds.holds.values()))
        world.down = False
        await until(lambda: not holds.holds)
    assert world.acked == {0: [0], 1: [0], 2: [0]}
    assert sorted(world.resumed) == [0, 1, 2]


async def test_retries_back_off_to_the_cap_and_go_one_at_a_time() -> None:
    world = World()
    world.down = True
    in_flight = peak = 0

    async def write(piece: Chunk) -> BatchResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.002)
            return await world.write(piece)
        finally:
            in_flight -= 1

    holds: Holds[Chunk, BatchResult] = Holds(
        write=write, done=world.done, pause=world.pause, resume=world.resume,
        retry_initial_s=0.001, retry_max_s=0.02,
    )  # fmt: skip
    async with holds:
        await holds.commit(await chunk_of(record(0, 0), record(1, 0)))
        peak = 0  # the chunk path's own writes are sequential; count only the retries
        await asyncio.sleep(0.2)
        retries = sum(h.retries for h in holds.holds.values())
    assert peak == 1
    # With a 20 ms cap two holds retry at most ~10 times each in 200 ms (not hundreds).
    assert 2 <= retries <= 30


async def test_closing_cancels_retries_and_leaves_held_records_unacked() -> None:
    world = World()
    world.blocked = {3}
    holds = world.holds()
    await holds.commit(await chunk_of(record(3, 10), record(3, 11)))
    task = holds.holds[3].task
    await holds.close()
    assert task is not None and task.cancelled()
    assert not world.acked and world.resumed == []


async def test_a_bug_in_done_is_reported_rather_than_holding_for_ever() -> None:
    world = World()
    world.blocked = {0}
    crashed: list[BaseException] = []

    async def done(piece: Chunk, result: BatchResult, seconds: float) -> None:
        raise RuntimeError("ack failed")

    holds: Holds[Chunk, BatchResult] = Holds(
        write=world.write, done=done, pause=world.pause, resume=world.resume,
        retry_initial_s=0.001, retry_max_s=0.002, crashed=crashed.append,
    )  # fmt: skip
    await holds.commit(await chunk_of(record(0, 0)))
    world.blocked.clear()
    await until(lambda: bool(crashed))
    assert isinstance(crashed[0], RuntimeError)
    await holds.close()


@pytest.mark.parametrize("failures", [1, 4])
async def test_changed_is_told_of_every_hold_retry_and_release(failures: int) -> None:
    world = World()
    seen: list[dict[int, int]] = []
    left = failures

    async def write(piece: Chunk) -> BatchResult:
        nonlocal left
        if left:
            left -= 1
            raise ConnectionError("server closed the connection")
        return await world.write(piece)

    holds: Holds[Chunk, BatchResult] = Holds(
        write=write, done=world.done, pause=world.pause, resume=world.resume,
        retry_initial_s=0.001, retry_max_s=0.002,
        changed=lambda h: seen.append({p: d["retries"] for p, d in h.detail().items()}),
    )  # fmt: skip
    async with holds:
        await holds.commit(await chunk_of(record(5, 0)))
        await until(lambda: not holds.holds)
    assert seen == [{5: r} for r in range(failures)] + [{}]
    assert world.acked == {5: [0]}


async def test_readiness_and_metrics_name_a_held_partition_and_its_retries() -> None:
    world = World()
    world.blocked = {7}
    state = HealthState(stall_after_s=60)
    state.started = True
    holds: Holds[Chunk, BatchResult] = Holds(
        write=world.write, done=world.done, pause=world.pause, resume=world.resume,
        retry_initial_s=0.001, retry_max_s=0.002,
        changed=lambda h: state.set_held(h.detail()),
    )  # fmt: skip
    async with holds:
        await holds.commit(await chunk_of(record(7, 0), record(8, 0)))
        await until(lambda: holds.holds[7].retries >= 2)
        view = state.held_view()
        assert list(view) == ["7"] and view["7"]["retries"] >= 2 and view["7"]["records"] == 1
        (problem,) = state.problems()
        assert problem.startswith("partition 7 held, retrying for") and "lock timeout" in problem
        text = generate_latest().decode()
        assert 'opsledger_aggregator_partition_held{partition="7"} 1.0' in text
        assert 'opsledger_aggregator_partition_hold_retries{partition="7"}' in text
        world.blocked.clear()
        await until(lambda: not holds.holds)
    assert state.problems() == [] and state.held_view() == {}
    assert 'opsledger_aggregator_partition_held{partition="7"} 0.0' in generate_latest().decode()
