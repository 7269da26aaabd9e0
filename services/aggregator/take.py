"""Batches off the stream bounded in bytes as well as records: what the aggregator holds is bounded.

faust's ``Stream.noack_take(max_, within)`` closes a batch at ``max_`` records or after
``within`` seconds. Records are up to a megabyte (a maximum-size submission is about 900 KB),
so a batch of 1,000 records could hold a gigabyte. `bounded_take` works the same way (a
processor fills the batch in the background while the stream is consumed passively; nothing
is acked: the agent acks after commit) but also closes the batch when its records' bytes
reach ``max_bytes``. With faust's ``stream_buffer_maxsize`` derived from the same budget
(`buffer_records`), the records held in flight stay within about twice the budget whatever
their size (docs/reliability.md has the measured RSS).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

#: The largest record the broker accepts by default (message.max.bytes): the size the stream
#: buffer is budgeted for.
MAX_RECORD_BYTES = 1 << 20


def buffer_records(inflight_max_bytes: int) -> int:
    """faust's stream buffer, in records, for half the budget at maximum-size records."""
    return max(16, inflight_max_bytes // 2 // MAX_RECORD_BYTES)


def _size(event: Any) -> int:
    value = event.message.value
    return len(value) if value is not None else 0


async def bounded_take(
    stream: Any, max_: int, within: float, *, max_bytes: int
) -> AsyncIterator[list[Any]]:
    """Yield lists of faust events, each closed at ``max_`` records, ``max_bytes`` or ``within`` s.

    Never acks (the caller acks each event after its commit). A record bigger than
    ``max_bytes`` makes a batch of its own.
    """
    batch: list[Any] = []
    size = [0]
    full = asyncio.Event()
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
        if len(batch) >= max_ or size[0] >= max_bytes:
            full.set()
            consumed.clear()
            await stream.wait(consumed)  # no more until this batch is taken
        return value

    acks = stream.enable_acks
    stream.enable_acks = False
    stream.add_processor(add)
    stream._enable_passive(aiter(stream.channel))  # noqa: SLF001 - as faust's own take does
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(full, timeout=within)
            if not batch:
                continue
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
        stream.enable_acks = acks
        stream._processors.remove(add)  # noqa: SLF001
