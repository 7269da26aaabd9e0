"""One LISTEN connection per process, fanning the aggregator's change signals out to subscribers.

The aggregator runs ``pg_notify('opsledger_totals', operation_id)`` inside each batch's
transaction, so a signal arrives only after the change is committed and visible. Each live-stream
client subscribes here instead of holding its own connection or polling. A signal carries no data:
a subscriber re-reads the totals, so a full (bounded) queue may drop signals without losing news.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import asyncpg

from services.common.db import TOTALS_CHANNEL

log = logging.getLogger(__name__)

Stamp = tuple[int, int]  # (connection epoch, per-operation change count)


class HubFull(Exception):
    """Too many live subscribers in this process."""


class Subscription:
    """One client's view of the changes to one operation."""

    def __init__(self, operation_id: str, maxsize: int) -> None:
        self.operation_id = operation_id
        self._queue: asyncio.Queue[None] = asyncio.Queue(maxsize)

    def signal(self) -> None:
        """Note that the operation may have changed (never blocks the listener)."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)  # a pending signal already covers this one

    async def wait(self, seconds: float) -> bool:
        """True when a change was signalled within ``seconds``; drains the backlog."""
        try:
            await asyncio.wait_for(self._queue.get(), seconds)
        except TimeoutError:
            return False
        while not self._queue.empty():
            self._queue.get_nowait()
        return True


class ChangeHub:
    """Listens on the totals channel, reconnecting forever, and signals subscribers."""

    def __init__(
        self,
        dsn: str,
        *,
        channel: str = TOTALS_CHANNEL,
        queue_size: int = 8,
        max_subscribers: int = 1000,
        probe_interval_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._queue_size = queue_size
        self._max = max_subscribers
        self._probe_s = probe_interval_s
        self._subs: dict[str, set[Subscription]] = {}
        self._changes: dict[str, int] = {}
        self._epoch = 0
        self._signals = 0
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.connected = False
        self.backend_pid: int | None = None  # the listening connection's server process

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, wait_s: float = 5.0) -> None:
        """Start listening; waits up to ``wait_s`` for the first connection, then goes on."""
        self._task = asyncio.create_task(self._run(), name="opsledger-query-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait_s)

    async def stop(self) -> None:
        """Stop listening and release every subscriber."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._wake_all()

    # -- subscribers -------------------------------------------------------------------------
    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    @contextlib.contextmanager
    def subscribe(self, operation_id: str) -> Iterator[Subscription]:
        """A subscription to ``operation_id`` for the duration of the ``with`` block."""
        if self.subscribers >= self._max:
            raise HubFull(f"{self._max} live subscribers already")
        sub = Subscription(operation_id, self._queue_size)
        self._subs.setdefault(operation_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(operation_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[operation_id]

    # -- change stamps (what the totals cache keys on) ---------------------------------------
    def stamp(self, operation_id: str) -> Stamp:
        """Changes whenever ``operation_id`` may have changed, or the listener reconnected."""
        return (self._epoch, self._changes.get(operation_id, 0))

    def any_stamp(self) -> Stamp:
        """Changes whenever anything may have changed."""
        return (self._epoch, self._signals)

    # -- the listener ------------------------------------------------------------------------
    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._signals += 1
        self._changes[payload] = self._changes.get(payload, 0) + 1
        for sub in self._subs.get(payload, ()):
            sub.signal()

    def _wake_all(self) -> None:
        self._epoch += 1
        for subs in self._subs.values():
            for sub in subs:
                sub.signal()

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=5,
                    server_settings={"application_name": "opsledger-query-listener"},
                )
            except Exception as exc:  # noqa: BLE001 - any failure to connect means: retry later
                log.warning("listener cannot connect (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            try:
                await self._listen(conn)
            except Exception as exc:  # noqa: BLE001 - the connection broke; reconnect
                log.warning("listener connection lost: %s", exc)
            finally:
                self.connected = False
                self.backend_pid = None
                self._listening.clear()
                conn.terminate()
                # Signals may have been missed while not listening: every subscriber re-reads.
                self._wake_all()

    async def _listen(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(self._channel, self._on_notify)
        self.backend_pid = conn.get_server_pid()
        self.connected = True
        self._wake_all()  # changes made before LISTEN took effect are not signalled
        self._listening.set()
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), self._probe_s)
            except TimeoutError:
                # A half-open socket never fires the termination listener; a probe notices.
                await asyncio.wait_for(conn.execute("SELECT 1"), self._probe_s)
