"""The one seam to Kafka: produce a record and learn its (partition, offset), never waiting long.

aiokafka waits forever for a broker that is down, both in ``send_and_wait`` and in ``stop``
(aio-libs/aiokafka#1101), so every wait here has a deadline. A producer that failed once is
discarded (closed in the background, itself under a deadline) and a fresh one is started by
the next request, so the service accepts again as soon as the broker is back, no restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, NamedTuple, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from services.common.kafka import client_kwargs
from services.common.topics import TopicError, ensure_topics
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

# Errors that mean "the broker did not take it": all become 503 with Retry-After.
_BROKER_ERRORS = (TimeoutError, KafkaError, OSError, TopicError)
_CLOSE_GRACE_S = 1.0


class Acked(NamedTuple):
    """Where the broker stored a record."""

    partition: int
    offset: int


class BrokerUnavailable(Exception):
    """The broker is unreachable or did not acknowledge within the bound."""


class EventProducer(Protocol):
    """What the HTTP layer needs from Kafka (the real one below; tests pass a fake)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, key: bytes, value: bytes) -> Acked: ...

    async def ready(self) -> bool: ...


class KeyPartitioner:
    """aiokafka's default partitioner for keyed records (murmur2 of the key, as the Java
    client), with each key's hash remembered.

    The hash is pure Python in aiokafka (~4 µs for an operation id), paid on every record;
    the keys are operation ids, few and repeated. Same partition as the default for every key,
    so an operation's events stay in one partition whichever producer wrote them.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._max_keys = max_keys
        self._hashes: dict[bytes, int] = {}
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


class KafkaEventProducer:
    """An idempotent, acks=all aiokafka producer for the log, with bounded waits and recovery."""

    def __init__(self, settings: IngestSettings) -> None:
        self._s = settings
        self._timeout = settings.produce_timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = KeyPartitioner()
        self._topics_ready = False
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._ready_value = False
        self._ready_at = -1e9
        self._ready_lock = asyncio.Lock()
        self._stopped = False
        # When the last produce failed (None after a success). A broker that answers metadata
        # may still be unable to take writes (on a cluster: too few in-sync replicas, or no
        # controller quorum), so readiness also says whether writes are being refused.
        self._write_failed_at: float | None = None

    async def start(self) -> None:
        """Create the topics and connect; a broker that is down now is not fatal (503 until up)."""
        try:
            async with asyncio.timeout(self._s.kafka_timeout_s):
                await self._current()
        except _BROKER_ERRORS as exc:
            log.warning("ingest: broker unavailable at start-up (%r); retrying per request", exc)

    async def stop(self) -> None:
        """Flush and close, bounded: a dead broker cannot hold up shutdown."""
        self._stopped = True
        producer, self._producer = self._producer, None
        if producer is not None:
            await _close(producer, self._s.kafka_timeout_s)
        if self._closing:
            await asyncio.wait(self._closing, timeout=self._s.kafka_timeout_s + _CLOSE_GRACE_S)

    async def send(self, key: bytes, value: bytes) -> Acked:
        """Produce one record; return only once the broker acknowledged it (acks=all)."""
        producer: AIOKafkaProducer | None = None
        try:
            async with asyncio.timeout(self._timeout):
                producer = await self._current()
                delivery = await producer.send(self._s.topic, value, key=key)
                metadata: Any = await delivery
        except _BROKER_ERRORS as exc:
            self._write_failed_at = time.monotonic()
            self._discard(producer)
            raise BrokerUnavailable(_describe(exc)) from exc
        if metadata is None or metadata.offset is None or metadata.offset < 0:
            # Only acks=0 answers without an offset; never report such a record as stored.
            raise BrokerUnavailable("the broker did not report an offset")
        self._write_failed_at = None
        return Acked(metadata.partition, metadata.offset)

    async def ready(self) -> bool:
        """Does the broker answer now, with the log topic, and did no write fail in the last
        two produce bounds without one succeeding since? Bounded; the answer reused briefly."""
        failed_at = self._write_failed_at
        if failed_at is not None and time.monotonic() - failed_at < 2 * self._timeout:
            return False
        if time.monotonic() - self._ready_at < self._s.ready_cache_s:
            return self._ready_value
        async with self._ready_lock:
            if time.monotonic() - self._ready_at < self._s.ready_cache_s:
                return self._ready_value
            producer: AIOKafkaProducer | None = None
            try:
                async with asyncio.timeout(min(self._s.kafka_timeout_s, self._timeout)):
                    producer = await self._current()
                    cluster = await producer.client.fetch_all_metadata()
                ok = cluster.partitions_for_topic(self._s.topic) is not None
                if not ok:
                    log.warning("ingest: not ready: topic %s does not exist", self._s.topic)
            except _BROKER_ERRORS as exc:
                log.warning("ingest: broker not ready: %s", _describe(exc))
                self._discard(producer)
                ok = False
            self._ready_value, self._ready_at = ok, time.monotonic()
            return ok

    async def _current(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is not None:
                return self._producer
            if self._stopped:
                raise BrokerUnavailable("the producer is shut down")
            if not self._topics_ready:
                await ensure_topics(self._s, self._timeout)
                self._topics_ready = True
            producer = self._new_producer()
            try:
                await producer.start()
            except BaseException:
                self._close_later(producer)
                raise
            self._producer = producer
            return producer

    def _new_producer(self) -> AIOKafkaProducer:
        timeout_ms = int(self._timeout * 1000)
        return AIOKafkaProducer(
            **client_kwargs(self._s),
            client_id="opsledger-ingest",
            partitioner=self._partitioner,
            acks="all",
            enable_idempotence=True,
            linger_ms=self._s.linger_ms,
            max_batch_size=self._s.max_batch_size,
            max_request_size=max(self._s.max_batch_size, self._s.max_record_bytes) + 64 * 1024,
            compression_type=self._s.compression_type,
            request_timeout_ms=timeout_ms,
            # A dead connection must be noticed within the produce bound, not minutes later.
            connections_max_idle_ms=max(timeout_ms * 2, 10_000),
            retry_backoff_ms=100,
        )

    def _discard(self, producer: AIOKafkaProducer | None) -> None:
        # Only the failing producer is dropped: a concurrent request may already have replaced it.
        if producer is not None and producer is self._producer:
            self._producer = None
            self._ready_at = -1e9
            self._close_later(producer)

    def _close_later(self, producer: AIOKafkaProducer) -> None:
        task = asyncio.get_running_loop().create_task(_close(producer, self._s.kafka_timeout_s))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def _close(producer: AIOKafkaProducer, timeout_s: float) -> None:
    """Stop a producer within ``timeout_s``; past it, drop its unsent batches and its sockets."""
    try:
        async with asyncio.timeout(timeout_s):
            await producer.stop()
        return
    except _BROKER_ERRORS as exc:
        log.warning("ingest: producer did not stop cleanly (%s); closing it hard", _describe(exc))
    # stop() waits for batches a dead broker will never take (aiokafka#1101): cancel the sender
    # and close the connections instead. Those batches' requests have already answered 503.
    with contextlib.suppress(*_BROKER_ERRORS, asyncio.CancelledError):
        async with asyncio.timeout(_CLOSE_GRACE_S):
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                await sender.close()
            await producer.client.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the broker did not acknowledge in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
