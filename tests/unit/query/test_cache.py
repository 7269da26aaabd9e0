"""The totals cache serves the projection until a change signal, and never stores a stale read."""

from __future__ import annotations

from services.query.cache import ReadCache
from services.query.hub import ChangeHub


def _hub(connected: bool = True) -> ChangeHub:
    hub = ChangeHub("postgresql://unused")
    hub.connected = connected
    return hub


async def test_cached_until_the_operation_is_signalled() -> None:
    hub = _hub()
    cache = ReadCache(hub, enabled=True, freshness_ttl_s=60)
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        return loads

    assert await cache.totals("op-a", "k", load) == 1
    assert await cache.totals("op-a", "k", load) == 1
    hub._on_notify(None, 0, "opsledger_totals", "op-b")  # another operation: still cached
    assert await cache.totals("op-a", "k", load) == 1
    hub._on_notify(None, 0, "opsledger_totals", "op-a")
    assert await cache.totals("op-a", "k", load) == 2


async def test_a_signal_during_the_read_keeps_the_read_out_of_the_cache() -> None:
    hub = _hub()
    cache = ReadCache(hub, enabled=True, freshness_ttl_s=60)
    values = iter([1, 2])

    async def racing_load() -> int:
        hub._on_notify(None, 0, "opsledger_totals", "op-a")  # a commit lands mid-read
        return next(values)

    assert await cache.totals("op-a", "k", racing_load) == 1
    assert await cache.totals("op-a", "k", racing_load) == 2


async def test_nothing_is_cached_while_the_listener_is_down() -> None:
    hub = _hub(connected=False)
    cache = ReadCache(hub, enabled=True, freshness_ttl_s=60)
    counter = iter(range(10))

    async def load() -> int:
        return next(counter)

    assert [await cache.totals("op-a", "k", load) for _ in range(3)] == [0, 1, 2]
    assert [await cache.freshness(load) for _ in range(2)] == [3, 4]


async def test_freshness_is_reread_after_any_signal() -> None:
    hub = _hub()
    cache = ReadCache(hub, enabled=True, freshness_ttl_s=60)
    counter = iter(range(10))

    async def load() -> int:
        return next(counter)

    assert await cache.freshness(load) == 0
    assert await cache.freshness(load) == 0
    hub._on_notify(None, 0, "opsledger_totals", "op-z")
    assert await cache.freshness(load) == 1


async def test_no_entry_is_served_past_its_max_age(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    hub = _hub()
    cache = ReadCache(hub, enabled=True, freshness_ttl_s=60, max_age_s=30)
    counter = iter(range(10))

    async def load() -> int:
        return next(counter)

    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now)
    assert await cache.totals("op-a", "k", load) == 0
    monkeypatch.setattr(time, "monotonic", lambda: now + 29)
    assert await cache.totals("op-a", "k", load) == 0
    monkeypatch.setattr(time, "monotonic", lambda: now + 31)
    assert await cache.totals("op-a", "k", load) == 1


async def test_a_burst_of_identical_misses_reads_once() -> None:
    import asyncio

    hub = _hub()
    cache = ReadCache(hub, enabled=True, freshness_ttl_s=60)
    loads = 0
    gate = asyncio.Event()

    async def slow_load() -> int:
        nonlocal loads
        loads += 1
        await gate.wait()
        return 42

    readers = [asyncio.create_task(cache.totals("op-a", "k", slow_load)) for _ in range(50)]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*readers) == [42] * 50
    assert loads == 1


async def test_a_failed_read_fails_every_waiter_and_is_not_cached() -> None:
    import asyncio

    hub = _hub()
    cache = ReadCache(hub, enabled=True, freshness_ttl_s=60)
    gate = asyncio.Event()

    async def failing() -> int:
        await gate.wait()
        raise OSError("database went away")

    readers = [asyncio.create_task(cache.totals("op-a", "k", failing)) for _ in range(3)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)

    async def ok() -> int:
        return 7

    assert await cache.totals("op-a", "k", ok) == 7  # the failure left nothing behind


async def test_readers_that_find_freshness_stale_together_share_one_read() -> None:
    import asyncio

    hub = _hub()
    cache = ReadCache(hub, enabled=True, freshness_ttl_s=60)
    loads = 0
    gate = asyncio.Event()

    async def slow_load() -> int:
        nonlocal loads
        loads += 1
        await gate.wait()
        return loads

    readers = [asyncio.create_task(cache.freshness(slow_load)) for _ in range(50)]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(*readers) == [1] * 50
    assert loads == 1


async def test_a_freshness_read_begun_before_a_signal_is_not_shared_after_it() -> None:
    import asyncio

    hub = _hub()
    cache = ReadCache(hub, enabled=True, freshness_ttl_s=60)
    loads = 0
    gate = asyncio.Event()

    async def slow_load() -> int:
        nonlocal loads
        loads += 1
        await gate.wait()
        return loads

    first = asyncio.create_task(cache.freshness(slow_load))
    await asyncio.sleep(0.01)
    hub._on_notify(None, 0, "opsledger_totals", "op-a")  # a commit after that read began
    second = asyncio.create_task(cache.freshness(slow_load))
    await asyncio.sleep(0.01)
    gate.set()
    assert sorted(await asyncio.gather(first, second)) == [2, 2]  # both ended after 2 loads
    assert loads == 2
