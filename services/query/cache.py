"""Current totals kept in memory until the aggregator signals a change to their operation.

Only reads of the projection are cached (never as_of/known_at reads). An entry is stored only if
no change signal arrived while it was being read, and nothing is cached while the listener is
disconnected, so a cached answer is never older than the last commit the process was told about.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from services.query.hub import ChangeHub, Stamp

T = TypeVar("T")


class ReadCache:
    """Totals keyed by (operation, shape) and freshness with a time-to-live."""

    def __init__(self, hub: ChangeHub, *, enabled: bool, freshness_ttl_s: float) -> None:
        self._hub = hub
        self._enabled = enabled
        self._ttl = freshness_ttl_s
        self._totals: dict[Hashable, tuple[Stamp, Any]] = {}
        self._fresh: tuple[Stamp, float, Any] | None = None
        self.max_entries = 10_000

    async def totals(self, operation_id: str, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached answer for ``key`` if ``operation_id`` has not changed since, else load."""
        if not (self._enabled and self._hub.connected):
            return await load()
        stamp = self._hub.stamp(operation_id)
        hit = self._totals.get(key)
        if hit is not None and hit[0] == stamp:
            value: T = hit[1]
            return value
        value = await load()
        if self._hub.connected and self._hub.stamp(operation_id) == stamp:
            if len(self._totals) >= self.max_entries:
                self._totals.clear()
            self._totals[key] = (stamp, value)
        return value

    async def freshness(self, load: Callable[[], Awaitable[T]]) -> T:
        """The consumer offsets, re-read after ``freshness_ttl_s`` or any change signal."""
        if not (self._enabled and self._hub.connected) or self._ttl <= 0:
            return await load()
        now = time.monotonic()
        stamp = self._hub.any_stamp()
        if self._fresh is not None and self._fresh[0] == stamp and now - self._fresh[1] < self._ttl:
            value: T = self._fresh[2]
            return value
        value = await load()
        self._fresh = (stamp, now, value)
        return value
