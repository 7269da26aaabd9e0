"""What the aggregator holds in flight is bounded in bytes, not only in records.

Two places hold records: faust's stream buffer (the channel's queue, filled by the fetcher,
4,096 records by default) and the batch being taken, decoded and written. Records are up to a
megabyte (a maximum-size submission is about 900 KB), so either could hold gigabytes.

* `ByteBoundedQueue` (the queue faust builds for each channel, via `LedgerApp`) counts the
  bytes it holds as well as the records: it reports "full" (the fetcher waits) and "pressure
  high" (faust pauses the partition) at a byte bound too, and lets the pressure drop only when
  both counts are low again. Small records keep the whole 4,096-record buffer (a buffer sized
  for megabyte records cost about a third of the single-event throughput).
* `bounded_take` takes like faust's ``noack_take`` (a processor fills the batch in the
  background while the stream is consumed passively; nothing is acked: the agent acks after
  commit) but also closes the batch when its records' bytes reach ``max_bytes``.

The stream buffer gets half of ``inflight_max_bytes``; the agent's half is split between the
take being decoded and what its group commit holds (the chunk committing and the one gathered
meanwhile: `services.aggregator.agent.GroupCommit`). docs/reliability.md has the measured RSS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from mode.utils.queues import ThrowableQueue

# With ``within`` 0, how often an idle take looks whether the stream is stopping (it wakes at
# once for a record or a stop; this only bounds the wait if a stop went unnoticed).
IDLE_CHECK_S = 1.0


def _size(item: Any) -> int:
    value = getattr(getattr(item, "message", None), "value", None)
    return len(value) if isinstance(value, bytes | bytearray) else 0


class ByteBoundedQueue(ThrowableQueue[Any]):
    """faust's channel queue, also bounded by the bytes of the records it holds."""

    def __init__(self, *args: Any, max_bytes: int, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        super().__init__(*args, **kwargs)

    # asyncio.Queue routes every put and get (force_put_nowait included) through these two.
    def _put(self, item: Any) -> None:
        self.bytes += _size(item)
        super()._put(item)

    def _get(self) -> Any:
        item = super()._get()
        self.bytes -= _size(item)
        return item

    def clear(self) -> None:
        super().clear()
        self.bytes = 0

    def full(self) -> bool:
        return bool(super().full()) or (self.bytes >= self.max_bytes and self.qsize() > 0)

    def in_pressure_high_state(self, callback: Any) -> bool:
        pending = self._pending_pressure_drop_callbacks
        if callback not in pending and self.bytes >= self.max_bytes / self.pressure_high_ratio:
            pending.add(callback)
            self.on_pressure_high()
            return True
        return bool(super().in_pressure_high_state(callback))

    def maybe_endorse_pressure_drop(self) -> None:
        if self.bytes > self.max_bytes * self.pressure_drop_ratio and self.qsize():
            return  # still heavy in bytes: the partitions stay paused
        super().maybe_endorse_pressure_drop()


async def bounded_take(
    stream: Any, max_: int, within: float, *, max_bytes: int
) -> AsyncIterator[list[Any]]:
    """Yield lists of faust events, each closed at ``max_`` records, ``max_bytes`` or ``within`` s.

    ``within`` 0 hands the records over as soon as there are any: no fixed wait when the stream
    is quiet. Under load batches still form: what the stream delivers while the previous batch
    is read (decoded) piles up here, and the agent's group commit gathers what is decoded while
    a transaction is in flight. Never acks (the caller acks each event after its commit). A
    record bigger than ``max_bytes`` makes a batch of its own.
    """
    batch: list[Any] = []
    size = [0]
    full = asyncio.Event()  # hand the batch over now (at its first record when within is 0)
    wake = IDLE_CHECK_S if within <= 0 else within
    consumed = asyncio.Event()
    reading: asyncio.Future[None] | None = None

    async def add(value: Any) -> Any:
        nonlocal reading
        if reading is not None:  # the agent is reading the batch: wait until it is handed over
            await reading
        event = stream.current_event
        if event is None:
            raise RuntimeError("no current event for a value of the stream")
        batch.append(event)
        size[0] += _size(event)
        if within <= 0:
            full.set()
        if len(batch) >= max_ or size[0] >= max_bytes:
            full.set()
            consumed.clear()
            await stream.wait(consumed)  # no more until this batch is taken
        return value

    # Acks stay off for good, unlike faust's own take which restores them when it ends: an
    # abandoned take (the agent's body raised or was cancelled) leaves the stream's passive
    # drainer pulling records that nobody applies, and it would ack each one of them.
    stream.enable_acks = False
    stream.add_processor(add)
    stream._enable_passive(aiter(stream.channel))  # noqa: SLF001 - as faust's own take does
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(full, timeout=wake)
            if not batch:
                continue
            if within <= 0:
                # Take what the stream already holds, not only its first records: the drainer
                # hands over a few records per loop turn, so let it run while it still adds
                # (it stops at an empty buffer, or waits at ``max_`` / ``max_bytes``).
                held = -1
                while held != len(batch) and not stream.should_stop:
                    held = len(batch)
                    await asyncio.sleep(0)
            loop = asyncio.get_running_loop()
            reading = loop.create_future()
            try:
                yield list(batch)
            finally:
                batch.clear()
                size[0] = 0
                if not reading.done():
                    reading.set_result(None)
                reading = None
                full.clear()
                consumed.set()
    finally:
        stream._processors.remove(add)  # noqa: SLF001
