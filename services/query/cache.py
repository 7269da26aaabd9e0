"""Totals kept in memory until the aggregator signals a change to their operation.

Every read of an operation (current, as_of, known_at) can only change when a batch changes that
operation's rows, and every such batch NOTIFYs it. An entry is stored only if no signal arrived
while it was being read, nothing is cached while the listener is disconnected, and no entry is
served after ``max_age_s`` (a bound for changes made outside the aggregator, e.g. by hand).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from services.query.hub import ChangeHub, Stamp

T = TypeVar("T")


class ReadCache:
    """Totals keyed by (operation, shape) and freshness with a time-to-live."""

    def __init__(
        self, hub: ChangeHub, *, enabled: bool, freshness_ttl_s: float, max_age_s: float = 30.0
    ) -> None:
        self._hub = hub
        self._enabled = enabled
        self._ttl = freshness_ttl_s
        self._max_age = max_age_s
        self._totals: dict[Hashable, tuple[Stamp, float, Any]] = {}
        # One read in flight per (key, stamp): a burst of identical misses waits for it.
        self._loading: dict[tuple[Hashable, Stamp], asyncio.Future[Any]] = {}
        self._fresh: tuple[Stamp, float, Any] | None = None
        self._fresh_loading: tuple[Stamp, asyncio.Future[Any]] | None = None
        self.max_entries = 10_000

    async def totals(self, operation_id: str, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached answer for ``key`` if ``operation_id`` has not changed since, else load."""
        if not (self._enabled and self._hub.connected):
            return await load()
        stamp = self._hub.stamp(operation_id)
        now = time.monotonic()
        hit = self._totals.get(key)
        if hit is not None and hit[0] == stamp and now - hit[1] < self._max_age:
            value: T = hit[2]
            return value
        flight = (key, stamp)
        pending = self._loading.get(flight)
        if pending is not None:
            shared: T = await asyncio.shield(pending)
            return shared
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[flight] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a burst of one never logs "never retrieved"
            raise
        else:
            future.set_result(value)
        finally:
            del self._loading[flight]
        if self._hub.connected and self._hub.stamp(operation_id) == stamp:
            if len(self._totals) >= self.max_entries:
                self._totals.clear()
            self._totals[key] = (stamp, now, value)
        return value

    async def freshness(self, load: Callable[[], Awaitable[T]]) -> T:
        """The consumer offsets, re-read after ``freshness_ttl_s`` or any change signal; the
        requests that find it stale together share one read."""
        if not (self._enabled and self._hub.connected) or self._ttl <= 0:
            return await load()
        now = time.monotonic()
        stamp = self._hub.any_stamp()
        if self._fresh is not None and self._fresh[0] == stamp and now - self._fresh[1] < self._ttl:
            value: T = self._fresh[2]
            return value
        pending = self._fresh_loading
        if pending is not None and pending[0] == stamp:
            # Started after the last signal this caller knows of: as fresh as its own would be.
            shared: T = await asyncio.shield(pending[1])
            return shared
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._fresh_loading = (stamp, future)
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        else:
            future.set_result(value)
        finally:
            if self._fresh_loading is not None and self._fresh_loading[1] is future:
                self._fresh_loading = None
        self._fresh = (stamp, now, value)
        return value
