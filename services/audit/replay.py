"""Reading the log for a rebuild: a group-less consumer feeding the ledger's BatchWriter.

Every partition is assigned, nothing is committed; records are decoded with the ledger's
``prepare`` (the CPU part, overlapping the previous batch's transaction) and applied by its
``BatchWriter`` into whatever schema the writer was made for. `services.audit.parallel`
splits the same replay over processes; it builds on this module, never the reverse.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.kafka import client_kwargs
from services.common.settings import CommonSettings
from services.ledger.apply import apply_retrying
from services.ledger.records import PreparedBatch, prepare
from services.ledger.writer import BatchWriter

#: Worker processes of a rebuild's first pass: each waits on PostgreSQL part of the time, so
#: two per core keep the cores busy (measured: 2 → 17k, 4 → 23k events/s on 2 cores).
DEFAULT_WORKERS = min(8, 2 * (os.cpu_count() or 1))
#: Records handed to the writer per transaction, and the bytes that also close a batch.
BATCH_RECORDS = 1000
BATCH_BYTES = 4 << 20
#: How long a batch failing transiently (a deadlock, a lost connection, a lock held too long)
#: is retried before the rebuild gives up; it then fails and leaves the live ledger untouched.
RETRY_FOR_S = 120.0


class Progress(Protocol):
    """Told how far the replay is; the CLI draws a progress bar, the benchmark nothing."""

    def started(self, total_records: int) -> None: ...

    def advanced(self, records: int, events: int) -> None: ...

    def phase(self, name: str) -> None:
        """The replay is done; ``name`` is what runs now, until the next phase or the end."""


class _Silent:
    def started(self, total_records: int) -> None:
        pass

    def advanced(self, records: int, events: int) -> None:
        pass

    def phase(self, name: str) -> None:
        pass


#: Where Kafka is: a bootstrap string, or settings (TLS/SASL included, see common/kafka.py).
#: Both pickle, so the rebuild's worker processes receive it as it is.
Kafka = str | CommonSettings


def kafka_options(kafka: Kafka) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client."""
    return {"bootstrap_servers": kafka} if isinstance(kafka, str) else client_kwargs(kafka)


async def topic_partitions(kafka: Kafka, topic: str, *, wait_s: float = 10.0) -> list[int]:
    """The topic's partition numbers; raise LookupError if it does not exist."""
    admin = AIOKafkaAdminClient(**kafka_options(kafka))
    await admin.start()
    try:
        deadline = time.monotonic() + wait_s
        while True:
            (described,) = await admin.describe_topics([topic])
            partitions = sorted(p["partition"] for p in described.get("partitions", []))
            if described.get("error_code", 0) == 0 and partitions:
                return partitions
            if time.monotonic() > deadline:  # a just-created topic takes a moment to appear
                raise LookupError(f"topic {topic!r} does not exist")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


@dataclass
class _Counts:
    records: int = 0
    events: int = 0
    duplicates: int = 0
    conflicts: int = 0
    poison: int = 0


async def _put(queue: asyncio.Queue[Any], item: Any, consumer: asyncio.Task[None]) -> None:
    """Queue ``item``, unless the consumer of the queue has died (then raise its error)."""
    put = asyncio.ensure_future(queue.put(item))
    await asyncio.wait({put, consumer}, return_when=asyncio.FIRST_COMPLETED)
    if not put.done():
        put.cancel()
        consumer.result()  # raises the writer's error
        raise RuntimeError("the writer stopped")


class LogReplayer:
    """Reads one topic with a group-less consumer and applies it through a `BatchWriter`."""

    def __init__(
        self,
        kafka: Kafka,
        topic: str,
        writer: BatchWriter,
        *,
        until: datetime | None = None,
        progress: Progress | None = None,
        partitions: Sequence[int] | None = None,
    ) -> None:
        self.topic = topic
        self._only = None if partitions is None else set(partitions)
        self.kafka = kafka
        self.writer = writer
        self.until = until
        self.progress = progress or _Silent()
        self.counts = _Counts()
        self._consumer = AIOKafkaConsumer(
            **kafka_options(kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=32 << 20,
            max_partition_fetch_bytes=8 << 20,
        )
        self._tps: list[TopicPartition] = []
        self.positions: dict[int, int] = {}  # partition -> next offset to read

    async def start(self) -> None:
        partitions = await topic_partitions(self.kafka, self.topic)
        if self._only is not None:
            partitions = [p for p in partitions if p in self._only]
        await self._consumer.start()
        self._tps = [TopicPartition(self.topic, p) for p in partitions]
        self._consumer.assign(self._tps)
        begin = await self._consumer.beginning_offsets(self._tps)
        self.positions = {tp.partition: begin[tp] for tp in self._tps}

    async def stop(self) -> None:
        await self._consumer.stop()

    async def end_offsets(self) -> dict[int, int]:
        """The current end (next offset to be written) of every partition."""
        ends = await self._consumer.end_offsets(self._tps)
        return {tp.partition: ends[tp] for tp in self._tps}

    async def read_to(self, targets: Mapping[int, int]) -> None:
        """Apply every record from the current positions up to (excluding) ``targets``."""
        todo = {
            tp for tp in self._tps if self.positions[tp.partition] < targets.get(tp.partition, 0)
        }
        self.progress.started(sum(max(0, targets.get(p, 0) - o) for p, o in self.positions.items()))
        for tp in self._tps:
            self._consumer.seek(tp, self.positions[tp.partition])
        # Decoding (CPU, here) overlaps the previous batch's transaction (in PostgreSQL).
        queue: asyncio.Queue[tuple[int, PreparedBatch] | None] = asyncio.Queue(maxsize=2)
        writing = asyncio.create_task(self._write_from(queue))
        try:
            pending: list[tuple[int, int, bytes | None]] = []
            size = 0
            while todo:
                if writing.done():  # the writer failed: stop reading, raise its error
                    break
                fetched = await self._consumer.getmany(*todo, timeout_ms=500, max_records=5000)
                for tp, messages in fetched.items():
                    end = targets[tp.partition]
                    for m in messages:
                        if m.offset >= end:
                            break
                        pending.append((tp.partition, m.offset, m.value))
                        size += len(m.value or b"")
                        self.positions[tp.partition] = m.offset + 1
                        if len(pending) >= BATCH_RECORDS or size >= BATCH_BYTES:
                            await _put(
                                queue, (len(pending), self._in_time(prepare(pending))), writing
                            )
                            pending, size = [], 0
                    # Offsets can skip (compaction, transaction markers): trust the position.
                    position = await self._consumer.position(tp)
                    if position >= end or self.positions[tp.partition] >= end:
                        self.positions[tp.partition] = max(
                            self.positions[tp.partition], min(position, end)
                        )
                        todo.discard(tp)
            if pending:
                await _put(queue, (len(pending), self._in_time(prepare(pending))), writing)
        finally:
            if not writing.done():
                await queue.put(None)
            await writing

    async def _write_from(self, queue: asyncio.Queue[tuple[int, PreparedBatch] | None]) -> None:
        while (item := await queue.get()) is not None:
            n_records, batch = item
            # The live aggregator's rules: a record the database refuses is dead-lettered alone;
            # a transient failure is retried (here the whole batch: a rebuild must reach the end
            # of every partition before it is of any use, so nothing would gain by going on).
            result = await apply_retrying(self.writer, batch, retry_for_s=RETRY_FOR_S)
            c = self.counts
            c.records += n_records
            c.events += result.applied
            c.duplicates += result.duplicates
            c.conflicts += result.conflicts
            c.poison += len(result.poison)
            self.progress.advanced(n_records, result.applied + result.duplicates)

    def _in_time(self, batch: PreparedBatch) -> PreparedBatch:
        if self.until is None:
            return batch
        until = self.until
        kept = [r for r in batch.records if r.events[0].recorded_at <= until]
        return PreparedBatch(records=kept, poison=batch.poison)
