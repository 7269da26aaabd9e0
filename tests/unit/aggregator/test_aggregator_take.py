"""The stream buffer is bounded in bytes as well as records."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mode.utils.queues import FlowControlEvent

from services.aggregator.take import ByteBoundedQueue


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
