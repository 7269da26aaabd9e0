"""A transient failure holds only the partition it concerns; every other partition keeps applying.

`services.ledger.apply.apply_batch` already isolates a record the database *refuses* (it goes
to the DLQ alone). What it raises is transient: the connection, the server or the moment is at
fault (a lock held on one operation's rows until ``lock_timeout``, a serialization failure, a
statement timeout, a lost connection). Retrying the whole chunk made every partition of the
instance wait for the one at fault. `Holds` does instead:

1. write the chunk as one transaction (the usual case: it commits, its records are acked);
2. when that raises, write it again one partition at a time, in partition order: partitions
   that commit are acked and flow on; a partition that fails is **held**;
3. a held partition is paused in the consumer (its later records stay in Kafka, memory stays
   bounded) and its records, with any of its records already taken off the stream afterwards,
   wait in the hold in log order. One retry task per hold writes them, oldest first, with
   capped exponential backoff; retries of all holds go through one lane (one transaction at a
   time), so they never take the pool's connections from the partitions that flow;
4. once everything held has committed and been acked, the hold ends and the partition resumes.

Per partition nothing is acked before an earlier record of the same partition has committed
(the consumer's committed offset is a prefix of what is applied), and a partition's records
are written by one path at a time: the chunk path never writes a held partition. A database
that is down altogether holds every partition (each one's retries find it back). A crash or a
stop at any instant is safe: held records are not acked, the partition's next owner gets them
again, and the writer skips what its stored offsets say is applied.

The module knows nothing of faust: the agent passes how to write a piece, what to do once one
committed (metrics, acks), and how to pause and resume a partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar

from services.ledger.records import PreparedBatch

log = logging.getLogger("opsledger.aggregator")


class Piece(Protocol):
    """What a hold handles: the agent's chunk (`services.aggregator.agent.Chunk`)."""

    batch: PreparedBatch
    events: list[Any]  # faust events (``event.message.partition``), acked after commit
    keys: dict[tuple[int, int], bytes | None]
    size: int  # events (a poison record counts one)
    nbytes: int  # bytes of the records' values

    def __init__(self) -> None: ...


P = TypeVar("P", bound=Piece)
R = TypeVar("R")


def partitions_of(piece: Piece) -> list[int]:
    """The partitions a piece holds records of, in order."""
    return sorted({event.message.partition for event in piece.events})


def split(piece: P) -> dict[int, P]:
    """The piece cut by partition, each part in the piece's (log) order."""
    parts: dict[int, P] = {}

    def part(partition: int) -> P:
        if partition not in parts:
            parts[partition] = type(piece)()
        return parts[partition]

    for event in piece.events:
        target = part(event.message.partition)
        target.events.append(event)
        target.nbytes += len(event.message.value or b"")
    for record in piece.batch.records:
        target = part(record.partition)
        target.batch.records.append(record)
        target.size += len(record.events)
    for poison in piece.batch.poison:
        target = part(poison.partition)
        target.batch.poison.append(poison)
        target.size += 1
    for position, key in piece.keys.items():
        part(position[0]).keys[position] = key
    return dict(sorted(parts.items()))


@dataclass
class Hold(Generic[P]):
    """One held partition: its records in log order, and how its retries go."""

    partition: int
    pieces: deque[P] = field(default_factory=deque)
    since: float = field(default_factory=time.monotonic)
    retries: int = 0
    error: str = ""
    task: asyncio.Task[None] | None = None

    @property
    def records(self) -> int:
        return sum(len(p.events) for p in self.pieces)

    def detail(self) -> dict[str, Any]:
        """What readiness shows of this hold (``since``: ``time.monotonic()`` when it began)."""
        return {
            "retries": self.retries,
            "since": self.since,
            "records": self.records,
            "error": self.error,
        }


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class Holds(Generic[P, R]):
    """The chunk path with per-partition holds (module docstring)."""

    def __init__(
        self,
        *,
        write: Callable[[P], Awaitable[R]],
        done: Callable[[P, R, float], Awaitable[None]],
        pause: Callable[[int], Awaitable[None]],
        resume: Callable[[int], Awaitable[None]],
        retry_initial_s: float,
        retry_max_s: float,
        changed: Callable[[Holds[P, R]], None] | None = None,
        crashed: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._write = write
        self._done = done
        self._pause = pause
        self._resume = resume
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._changed = changed
        self._crashed = crashed
        self.holds: dict[int, Hold[P]] = {}
        self._lane = asyncio.Lock()  # one retry transaction at a time, whichever hold

    def detail(self) -> dict[int, dict[str, Any]]:
        """Held partitions and their retries, for readiness and /metrics."""
        return {p: h.detail() for p, h in sorted(self.holds.items())}

    async def commit(self, chunk: P) -> None:
        """Apply ``chunk``: what commits is acked (through ``done``), a failing partition is held.

        Returns once every partition of the chunk is committed or held; never raises for a
        failed write (only cancellation, or a bug in ``done``, escapes).
        """
        started = time.monotonic()
        parts = split(chunk)
        held = {p: parts.pop(p) for p in list(parts) if p in self.holds}
        for partition, part in held.items():
            await self._add(partition, part, None)
        if not parts:
            return
        flowing = chunk if not held else _join(chunk, parts.values())
        try:
            result = await self._write(flowing)
        except Exception as exc:  # noqa: BLE001 - transient (apply_batch isolates refusals)
            if len(parts) == 1:
                ((partition, part),) = parts.items()
                await self._add(partition, part, exc)
                return
            log.warning("chunk failed (%r); writing it one partition at a time", exc)
        else:
            await self._done(flowing, result, time.monotonic() - started)
            return
        for partition, part in parts.items():
            begun = time.monotonic()
            try:
                result = await self._write(part)
            except Exception as exc:  # noqa: BLE001 - this partition waits alone
                await self._add(partition, part, exc)
                continue
            await self._done(part, result, time.monotonic() - begun)

    async def _add(self, partition: int, part: P, error: BaseException | None) -> None:
        """Hold ``part`` after what partition holds already (a new hold when there is none)."""
        hold = self.holds.get(partition)
        if hold is None:
            hold = self.holds[partition] = Hold(partition)
            hold.error = describe(error) if error is not None else ""
            hold.task = asyncio.ensure_future(self._retry(hold))
            hold.task.add_done_callback(self._retry_ended)
            log.warning("partition %s held (%s); the others keep applying", partition, hold.error)
            hold.pieces.append(part)
            self._notify()
            await self._pause(partition)
            return
        hold.pieces.append(part)
        self._notify()

    async def _retry(self, hold: Hold[P]) -> None:
        delay = self.retry_initial_s
        while True:
            await asyncio.sleep(delay)
            async with self._lane:
                piece = hold.pieces[0]
                begun = time.monotonic()
                try:
                    result = await self._write(piece)
                except Exception as exc:  # noqa: BLE001 - still transient: wait longer
                    hold.retries += 1
                    hold.error = describe(exc)
                    self._notify()
                    delay = min(delay * 2, self.retry_max_s)
                    log.warning(
                        "held partition %s failed again (%s); retry %d in %.2f s",
                        hold.partition, hold.error, hold.retries, delay,
                    )  # fmt: skip
                    continue
            await self._done(piece, result, time.monotonic() - begun)
            hold.pieces.popleft()
            if hold.pieces:
                delay = 0.0  # what was held behind it, at once
                continue
            # Nothing awaited between the check above and here: no record of the partition can
            # slip into the hold after it was found empty.
            del self.holds[hold.partition]
            log.info("partition %s released after %d retries", hold.partition, hold.retries)
            self._notify()
            await self._resume(hold.partition)
            return

    def _retry_ended(self, task: asyncio.Task[None]) -> None:
        """A retry task ends by releasing its hold or by cancellation; anything else is a bug
        (in ``done``): the hold would never end, so the agent is told (it stops the worker)."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        log.critical("retry of a held partition failed", exc_info=exc)
        if self._crashed is not None:
            self._crashed(exc)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed(self)

    async def close(self) -> None:
        """Stop every retry (stopping or the agent failed): held records stay unacked."""
        tasks = [h.task for h in self.holds.values() if h.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _join(like: P, parts: Any) -> P:
    """One piece of ``parts`` (each of one partition), in partition order."""
    out = type(like)()
    for part in parts:
        out.events.extend(part.events)
        out.batch.records.extend(part.batch.records)
        out.batch.poison.extend(part.batch.poison)
        out.keys.update(part.keys)
        out.size += part.size
        out.nbytes += part.nbytes
    return out
