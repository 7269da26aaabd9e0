"""The stream buffer is bounded in bytes as well as records."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
from faust.events import Event
from faust.types import Message
from mode.utils.queues import FlowControlEvent

from services.aggregator.take import ByteBoundedQueue, bounded_take


def event(size: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(value=b"x" * size))


async def test_the_buffer_is_full_at_its_byte_bound_long_before_its_record_bound() -> None:
    flow = FlowControlEvent()
    flow.resume()
    queue = ByteBoundedQueue(maxsize=4096, flow_control=flow, max_bytes=10_000)
    paused, resumed = [], []
    for _ in range(8):  # 8 KB: under the bound; "pressure high" is 10 KB / 1.25, checked per put
        queue.put_nowait_enhanced(
            event(1000), on_pressure_high=lambda: paused.append(1),
            on_pressure_drop=lambda: resumed.append(1),
        )  # fmt: skip
    assert not queue.full() and paused == []
    queue.put_nowait_enhanced(
        event(1000), on_pressure_high=lambda: paused.append(1),
        on_pressure_drop=lambda: resumed.append(1),
    )  # fmt: skip
    assert paused == [1]  # 8 KB held at this put: faust pauses the partition
    queue.force_put_nowait(event(1000))
    assert queue.full() and queue.bytes == 10_000 and queue.qsize() == 10
    for _ in range(5):
        await queue.get()
    assert resumed == []  # 5 KB still held: above the drop mark (10 KB x 0.4)
    for _ in range(5):
        await queue.get()
    await_empty = queue.empty()
    assert await_empty and queue.bytes == 0
    queue.maybe_endorse_pressure_drop()
    assert resumed == [1]


async def test_small_records_keep_the_record_bound() -> None:
    flow = FlowControlEvent()
    flow.resume()
    queue = ByteBoundedQueue(maxsize=4, flow_control=flow, max_bytes=1 << 20)
    for _ in range(4):
        queue.force_put_nowait(event(10))
    assert queue.full() and queue.bytes == 40


async def test_an_abandoned_take_never_acks_what_the_stream_receives_afterwards() -> None:
    """When the agent's body raises (or is cancelled) the take is abandoned mid-batch; the
    stream's passive drainer keeps pulling records. None of them was applied: acking them would
    let faust commit their offsets (contiguous acks, and faust-streaming#606 past a gap), and
    the partition's next owner would start after them."""
    app = faust.App("unit-take", broker="kafka://127.0.0.1:1", loop=asyncio.get_running_loop())
    app.flow_control.resume()
    stream = app.channel().stream()
    messages: list[Message] = []

    def put(offset: int) -> None:
        message = Message(
            "t", 0, offset, 0.0, 0, None, b"k", b"v", None,
            generation_id=app.consumer_generation_id,
        )  # fmt: skip
        messages.append(message)
        stream.channel.queue.put_nowait(Event(app, b"k", b"v", {}, message))

    for offset in range(3):
        put(offset)
    await stream.maybe_start()
    try:
        take = bounded_take(stream, 1, 0.05, max_bytes=1 << 20)
        async for events in take:
            assert [e.message.offset for e in events] == [0]
            break  # the body raised: this batch is not applied
        await take.aclose()  # what finalizing the abandoned generator does
        for offset in range(3, 6):
            put(offset)
        await asyncio.sleep(0.2)  # the drainer has pulled everything
        assert stream.channel.queue.empty()
        assert [m.offset for m in messages if m.acked] == []
    finally:
        await stream.stop()
        # The stream made the app's consumer, whose thread (never started) has its own loop.
        app.consumer._thread.thread_loop.close()  # type: ignore[attr-defined]  # noqa: SLF001


async def test_with_no_window_a_record_is_handed_over_at_once_and_a_burst_comes_whole() -> None:
    """within 0: no fixed wait when the stream is quiet (a lone record goes straight to the
    agent), yet records that are already there when the take looks come as one batch."""
    loop = asyncio.get_running_loop()
    app = faust.App("unit-take-now", broker="kafka://127.0.0.1:1", loop=loop)
    app.flow_control.resume()
    stream = app.channel().stream()

    def put(offset: int) -> None:
        message = Message(
            "t", 0, offset, 0.0, 0, None, b"k", b"v", None,
            generation_id=app.consumer_generation_id,
        )  # fmt: skip
        stream.channel.queue.put_nowait(Event(app, b"k", b"v", {}, message))

    for offset in range(50):
        put(offset)
    await stream.maybe_start()
    take = bounded_take(stream, 1000, 0, max_bytes=1 << 20)
    try:
        first = await anext(take)
        assert [e.message.offset for e in first] == list(range(50))
        await asyncio.sleep(0.3)  # quiet
        put(50)
        started = loop.time()
        second = await anext(take)
        waited = loop.time() - started
        assert [e.message.offset for e in second] == [50]
        assert waited < 0.1, f"a lone record waited {waited:.3f} s"
    finally:
        await take.aclose()
        await stream.stop()
        app.consumer._thread.thread_loop.close()  # type: ignore[attr-defined]  # noqa: SLF001
