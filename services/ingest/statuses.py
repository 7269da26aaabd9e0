"""What ingest knows of each operation's status, learnt from the compacted operations topic.

Ingest needs only Kafka (field apps keep recording while PostgreSQL is down), so it never asks
the database whether an operation is closed: a background consumer reads the operations topic
to its end at start-up (bounded), then follows it. `StatusMap` is the pure part (records in,
"is it closed?" out); `OperationsFollower` is the aiokafka edge.

When the topic cannot be read, ingest **fails open**: it keeps accepting events, and the
aggregator (the final judge) records any event that reaches the log after a close as late and
never counts it. Refusing every event because a side topic is unreadable would stop field
recording for all operations to protect the few that are closed, and would not protect the
tally any better. `/readyz` shows the follower's state so an operator sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.common.kafka import client_kwargs
from services.common.operations import OperationRecord
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)
State = Literal["starting", "following", "unavailable"]


@dataclass
class StatusMap:
    """The latest record of each operation, as the compacted topic holds it."""

    records: dict[str, OperationRecord] = field(default_factory=dict)
    unreadable: int = 0  # records that were not an operation record (skipped, counted)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Take one record of the topic: the latest of a key wins; a tombstone forgets it."""
        if value is None:
            if key is not None:
                self.records.pop(key.decode(errors="replace"), None)
            return
        try:
            record = OperationRecord.model_validate_json(value)
        except ValidationError:
            self.unreadable += 1
            return
        self.records[record.operation_id] = record

    def closed(self, operation_id: str) -> OperationRecord | None:
        """The closed record of ``operation_id``; None when open, or never created."""
        record = self.records.get(operation_id)
        return record if record is not None and record.status == "closed" else None


class OperationStatuses(Protocol):
    """What the handlers ask (tests pass a fake through `create_app`)."""

    def closed(self, operation_id: str) -> OperationRecord | None: ...

    def health(self) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class FixedStatuses:
    """A status view that never changes (tests, and apps built without a broker)."""

    def __init__(self, records: Iterable[OperationRecord] = ()) -> None:
        self.map = StatusMap({r.operation_id: r for r in records})

    def closed(self, operation_id: str) -> OperationRecord | None:
        return self.map.closed(operation_id)

    def health(self) -> dict[str, Any]:
        return {"state": "following", "operations": len(self.map.records)}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class OperationsFollower:
    """Read the operations topic to its end, then follow it; every broker wait is bounded."""

    def __init__(self, settings: IngestSettings) -> None:
        self._s = settings
        self._bound = settings.kafka_timeout_s
        self.map = StatusMap()
        self.state: State = "starting"
        self.caught_up = False
        self.error: str | None = None
        self.checked_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def closed(self, operation_id: str) -> OperationRecord | None:
        return self.map.closed(operation_id)

    def health(self) -> dict[str, Any]:
        closed = sum(1 for r in self.map.records.values() if r.status == "closed")
        return {
            "state": self.state,
            "caught_up": self.caught_up,
            "operations": len(self.map.records),
            "closed": closed,
            "checked_at": None if self.checked_at is None else self.checked_at.isoformat(),
            "error": self.error,
            "on_failure": "accept events (fail open); the aggregator records late ones",
        }

    async def start(self) -> None:
        """Start following; wait (bounded) until the topic was read to its end."""
        self._task = asyncio.create_task(self._run(), name="operations-follower")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._s.operations_startup_s):
                await self._ready.wait()
        if not self.caught_up:
            log.warning("ingest: operations topic not read at start-up (%s); failing open",
                        self.error or "timed out")  # fmt: skip

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=self._bound * 2)

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError as exc:
                if _stopping():
                    raise
                # aiokafka let out a cancellation of its own (not `stop`): failing, not stopped;
                # ending here would leave ingest on a stale "following" for good.
                self._failed(exc)
            except (KafkaError, OSError, TimeoutError) as exc:
                self._failed(exc)
            except Exception as exc:  # noqa: BLE001 - the follower must outlive any failure
                log.exception("ingest: operations follower failed")
                self._failed(exc)
            await asyncio.sleep(self._s.operations_check_s)

    def _failed(self, exc: BaseException) -> None:
        self.state, self.error = "unavailable", f"{type(exc).__name__}: {exc}"
        self._ready.set()  # start-up stops waiting: failing open from here
        log.warning("ingest: operations topic unreadable: %s", self.error)

    async def _follow(self) -> None:
        topic, bound = self._s.operations_topic, self._bound
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._s), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", request_timeout_ms=int(bound * 1000),
        )  # fmt: skip
        try:
            async with asyncio.timeout(bound):
                await consumer.start()
                exists = topic in await consumer.topics()  # fresh metadata from the broker
            if not exists:
                raise KafkaError(f"topic {topic!r} does not exist")
            # The topic is created with one partition (services.common.topics); the consumer's
            # cached metadata may not list a topic created after it connected.
            partitions = consumer.partitions_for_topic(topic) or {0}
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            async with asyncio.timeout(bound):
                await consumer.seek_to_beginning(*tps)
            end = await self._end_offsets(consumer, tps)
            last_check = time.monotonic()
            while True:
                async with asyncio.timeout(bound + 1):
                    batch = await consumer.getmany(*tps, timeout_ms=500, max_records=1000)
                for messages in batch.values():
                    for m in messages:
                        self.map.apply(m.key, m.value)
                if not self.caught_up:
                    positions = [await consumer.position(tp) for tp in tps]
                    if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                        self.caught_up, self.state, self.error = True, "following", None
                        self._ready.set()
                # getmany returns empty batches while the broker is gone; asking for the end
                # offsets now and then is what tells a quiet topic from an unreachable one.
                if time.monotonic() - last_check >= self._s.operations_check_s:
                    await self._end_offsets(consumer, tps)
                    last_check = time.monotonic()
        finally:
            await _close(consumer, bound)

    async def _end_offsets(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        async with asyncio.timeout(self._bound):
            end: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        self.checked_at = datetime.now(UTC)
        if self.caught_up or self.state == "unavailable":
            self.state, self.error = ("following" if self.caught_up else "starting"), None
        return end


def _stopping() -> bool:
    """Is the running task being cancelled (by `OperationsFollower.stop`)?"""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _close(consumer: AIOKafkaConsumer, bound: float) -> None:
    """Stop ``consumer`` within ``bound``; whatever happens, close its connections.

    After a fetch failed (the broker went away, or the loop stalled past a bound), aiokafka's
    ``stop`` can end half-way: its fetcher re-raises the CancelledError of the retry it cancels
    and the client is never closed, so its sockets and metadata task outlive the consumer (the
    connection pytest reported open at exit). Past a failed or late stop, the client is closed
    directly (aiokafka has no public handle on it), under the same bound.
    """
    try:
        async with asyncio.timeout(bound):
            await consumer.stop()
        return
    except asyncio.CancelledError:
        if _stopping():
            await _close_client(consumer, bound)
            raise
        log.warning("ingest: operations consumer did not stop cleanly; closing its connections")
    except (KafkaError, OSError, TimeoutError) as exc:
        log.warning("ingest: operations consumer did not stop cleanly (%r); closing its "
                    "connections", exc)  # fmt: skip
    await _close_client(consumer, bound)


async def _close_client(consumer: AIOKafkaConsumer, bound: float) -> None:
    with contextlib.suppress(KafkaError, OSError, TimeoutError):
        async with asyncio.timeout(bound):
            await consumer._client.close()
