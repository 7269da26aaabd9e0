"""The faust agent: batches of records off the log into the ledger, acknowledged only after commit.

Why the ack ordering is safe (faust-streaming 0.15):

* ``Stream.take()`` acks every buffered event in a ``finally`` after its ``yield``; that block
  also runs when the agent's body raises or is cancelled, so a failed or interrupted batch would
  be acked and its offset committed: the event would be skipped. We take like ``noack_take()``
  (`take.bounded_take`, which also bounds a batch in bytes), which
  never acks, and ack each event ourselves with ``stream.ack(event)`` only after the
  transaction holding its effects and its offset has committed.
* The consumer commits, per partition, the end of the first run of consecutive acked offsets
  (``Consumer._new_offset``). Its head-gap guard is off by one (faust-streaming issue 606,
  PR 707): acked offsets starting one past an in-flight record are committed over it. That
  needs an ack *ahead of* an unacked record, which only concurrency > 1 or out-of-order acks
  produce. We run ``concurrency=1``, commit chunks one at a time in log order and ack each
  chunk whole after its commit, so per partition the acked offsets are always a prefix of the
  delivered ones and the committed offset never passes an uncommitted record.
* No exception escapes the agent for a database or broker failure. A record the database
  refuses is dead-lettered alone (`services.ledger.apply`); a transient failure holds only the
  partition it concerns (`services.aggregator.holds`: paused, retried with capped exponential
  backoff, acked once committed) while the others keep applying (``/readyz`` names it). Per
  partition the acked offsets stay a prefix of the committed records. A crash at any
  instant leaves Kafka's committed offset at or below PostgreSQL's ``last_offset``; redelivered
  records are skipped by the writer under the offset row lock, so nothing is applied twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import asyncpg
import faust
from aiokafka import TopicPartition
from mode import Service

from services.aggregator import metrics
from services.aggregator.dlq import dead_letter
from services.aggregator.health import HealthState, start_health_server
from services.aggregator.holds import Holds
from services.aggregator.settings import AggregatorSettings
from services.aggregator.take import bounded_take
from services.common.broker_probe import BrokerProbe
from services.common.db import create_pool
from services.ledger.apply import apply_batch
from services.ledger.dead_letters import depth
from services.ledger.records import Poison, PreparedBatch, prepare_record
from services.ledger.writer import BatchResult, BatchWriter
from services.tlog import checkpoints
from services.tlog.keys import Signer, ledger_signer
from services.tlog.settings import TlogSettings

log = logging.getLogger("opsledger.aggregator")
# Decoding time between two turns of the event loop: short enough for the transaction in flight
# to make its round trips promptly, long enough not to pay for a loop turn per record.
YIELD_EVERY_S = 0.002
# How often lag asks the broker for its end offsets. The consumer's own highwater cannot be
# trusted for this: a consumer stalled after a broker restart (aio-libs/aiokafka#1154) stops
# fetching, its highwater freezes, and lag would read 0 while records pile up.
LAG_PROBE_S = 3.0
# How often the open dead letters are counted.
DLQ_DEPTH_EVERY_S = 2.0
# Set while `holds.Holds` writes a chunk: a failure is raised for the hold, not retried here.
_HOLDS_RETRY: ContextVar[bool] = ContextVar("opsledger_holds_retry", default=False)
# Longest wait for the consumer thread to pause or resume a partition.
FLOW_CALL_S = 5.0
# Longest graceful close of the PostgreSQL pool when stopping; then its connections are cut.
POOL_CLOSE_S = 2.0


class Broker(Protocol):
    """What the aggregator asks of the broker (services.common.broker_probe.BrokerProbe)."""

    async def problem(self) -> str | None: ...

    async def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int] | None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Chunk:
    """Consecutive records of one take, small enough (in events) for one transaction."""

    batch: PreparedBatch = field(default_factory=PreparedBatch)
    events: list[Any] = field(default_factory=list)  # faust events, acked after commit
    keys: dict[tuple[int, int], bytes | None] = field(default_factory=dict)
    size: int = 0
    nbytes: int = 0  # the records' bytes (values as read from the log)


async def chunks(events: Sequence[Any], max_events: int) -> AsyncIterator[Chunk]:
    """Decode a take's records and cut them, in order, into chunks of about max_events events.

    Yields to the event loop every YIELD_EVERY_S of decoding, so that the previous chunk's
    transaction (in flight in PostgreSQL) keeps making round trips while this one is decoded.
    """
    current = Chunk()
    turn = time.perf_counter()
    for event in events:
        message = event.message
        item = prepare_record(message.partition, message.offset, message.value)
        if isinstance(item, Poison):
            current.batch.poison.append(item)
            current.keys[(item.partition, item.offset)] = message.key
            current.size += 1
        else:
            current.batch.records.append(item)
            current.size += len(item.events)
        current.events.append(event)
        current.nbytes += len(message.value or b"")
        if current.size >= max_events:
            yield current
            current = Chunk()
        if time.perf_counter() - turn > YIELD_EVERY_S:
            await asyncio.sleep(0)
            turn = time.perf_counter()
    if current.events:
        yield current


class GroupCommit:
    """Decoded records waiting for the one committer, gathered into the next transaction.

    The agent adds decoded pieces in log order; the committer takes everything gathered so far
    whenever it is free. So a transaction holds what arrived while the previous one committed
    (group commit): one record alone when the stream is quiet (latency), up to ``max_events``
    under load (fewer commits per event). The agent waits when the gathered chunk is full in
    events, or when the gathered chunk and the one committing together would pass ``max_bytes``
    (the byte bound of `services.aggregator.take`: a piece is always admitted when nothing is
    held, so a record bigger than the bound still goes through, alone).
    """

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.gathered = Chunk()
        self.committing_bytes = 0  # bytes of the chunk the committer has taken, until done
        self._work = asyncio.Event()  # something is gathered
        self._room = asyncio.Event()  # the committer took a chunk or finished one

    def _full(self, piece: Chunk) -> bool:
        g = self.gathered
        if g.size and g.size + piece.size > self.max_events:
            return True
        held = g.nbytes + self.committing_bytes
        return bool(held) and held + piece.nbytes > self.max_bytes

    async def add(self, piece: Chunk, committer: asyncio.Future[None]) -> None:
        """Gather ``piece``; first wait for the committer while it would overflow a bound."""
        while self._full(piece):
            self._room.clear()
            room: asyncio.Future[Any] = asyncio.ensure_future(self._room.wait())
            waits: set[asyncio.Future[Any]] = {room, committer}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if not room.done():
                room.cancel()
                committer.result()  # raises the committer's error (or CancelledError)
                raise RuntimeError("the committer stopped")
        g = self.gathered
        g.batch.records.extend(piece.batch.records)
        g.batch.poison.extend(piece.batch.poison)
        g.events.extend(piece.events)
        g.keys.update(piece.keys)
        g.size += piece.size
        g.nbytes += piece.nbytes
        self._work.set()

    async def take(self) -> Chunk:
        """Everything gathered, once there is something; held (in bytes) until `done`."""
        await self._work.wait()
        chunk, self.gathered = self.gathered, Chunk()
        self.committing_bytes = chunk.nbytes
        self._work.clear()
        self._room.set()
        return chunk

    def done(self) -> None:
        """The chunk taken last is committed and acked: its bytes are no longer held."""
        self.committing_bytes = 0
        self._room.set()


class Aggregator:
    """Wires the agent, the writer, dead-lettering and health onto one faust app."""

    def __init__(self, app: faust.App, settings: AggregatorSettings) -> None:
        self.app = app
        self.settings = settings
        self.health = HealthState(settings.stall_after_s)
        self.applied: dict[int, int] = {}  # partition -> last applied offset (after commit)
        self._pool: asyncpg.Pool | None = None
        self._writer: BatchWriter | None = None
        self._writer_lock = asyncio.Lock()
        self._dead_lettered: set[tuple[int, int]] = set()  # poison sent, its write not yet done
        self.broker: Broker = BrokerProbe(
            settings,
            timeout_s=settings.ready_timeout_s,
            cache_s=settings.ready_cache_s,
            topic=settings.topic,
            client_id=f"{settings.consumer_group}-ready",
        )
        self.lag_probe_s = LAG_PROBE_S
        self._broker_ends: dict[int, int] = {}  # partition -> end offset, from the last probe
        self._probed_at = -1e9
        self.topic = app.topic(
            settings.topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
        )
        app.agent(self.topic, name="opsledger-aggregate", concurrency=1)(self._agent)
        app.timer(1.0)(self._refresh_lag)
        app.timer(DLQ_DEPTH_EVERY_S)(self._refresh_dlq_depth)
        # Signed checkpoints of every tree that grew, at most one per operation per interval.
        self.tlog = TlogSettings()
        self._signer: Signer | None = None
        self._grown: set[str] = set()  # operations this process wrote since it last signed them
        app.timer(self.tlog.checkpoint_interval_s / 2)(self._issue_checkpoints)

    # -- the agent ---------------------------------------------------------------------------

    async def _agent(self, stream: faust.StreamT[bytes]) -> None:
        self.health.started = True
        within = self.settings.batch_max_ms / 1000
        # noack_take's way (nothing acked until commit), but bounded in bytes too. The half of
        # inflight_max_bytes that is not the stream buffer's is split between the take being
        # decoded and what the group commit holds (gathered + committing).
        agent_bytes = self.settings.inflight_max_bytes // 2
        take = partial(bounded_take, stream, max_bytes=agent_bytes // 2)
        # One committer task commits, one transaction at a time in log order, whatever has been
        # decoded meanwhile, and acks each chunk only after its commit returned. This loop keeps
        # taking and decoding (of this take or the next) while a transaction is in flight.
        # What commits is acked then; a partition whose write fails is held and retried alone
        # (`holds.Holds.commit`) while the committer goes on with the others.
        pending = GroupCommit(self.settings.batch_max_events, agent_bytes - agent_bytes // 2)
        holds = self.holds(stream)
        committer = asyncio.ensure_future(self._commit_in_order(holds, pending))
        committer.add_done_callback(self._committer_done)
        try:
            async for events in take(self.settings.batch_max_events, within=within):
                async for piece in chunks(events, self.settings.batch_max_events):
                    await pending.add(piece, committer)
        except Exception as exc:
            # A bug, not bad input (bad input is poison). If faust restarted the agent, the
            # records of this take would never be applied while later ones moved the stored
            # offset past them; stopping the process instead redelivers them after a restart.
            log.critical("agent failed; stopping the worker so no record is skipped", exc_info=exc)
            self.health.fatal = f"agent failed: {type(exc).__name__}: {exc}"[:500]
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            # Stopping: a chunk not yet committed is not acked, and will be redelivered; nor
            # are held records.
            committer.cancel()
            await asyncio.gather(committer, return_exceptions=True)
            await holds.close()

    def holds(self, stream: faust.StreamT[bytes]) -> Holds[Chunk, BatchResult]:
        """The per-partition holds of this stream's chunks (`services.aggregator.holds`)."""

        async def done(chunk: Chunk, result: BatchResult, seconds: float) -> None:
            await self._ack(stream, chunk)  # `commit` recorded it

        return Holds(
            write=self._commit_once,
            done=done,
            pause=partial(self._flow, pause=True),
            resume=partial(self._flow, pause=False),
            retry_initial_s=self.settings.retry_initial_s,
            retry_max_s=self.settings.retry_max_s,
            changed=lambda h: self.health.set_held(h.detail()),
            crashed=self._hold_crashed,
        )

    async def _flow(self, partition: int, *, pause: bool) -> None:
        """Pause (or resume) fetching one partition of the topic, in the Kafka client itself.

        Not faust's ``pause_partitions``: faust drops, without a trace, the records of a
        partition it has already fetched but not yet handed over when that partition leaves
        its active set, while the client's position has moved past them: they would be
        skipped (a held partition's later records never came; the outage test caught it).
        The client's own pause discards what it prefetched *without* moving its position, so
        after ``resume`` it fetches again from the first record faust never saw. The client
        lives in faust's consumer thread (its own event loop): the call runs there.
        """
        tp = TopicPartition(self.settings.topic, partition)
        try:
            thread = self.app.consumer._thread  # type: ignore[attr-defined]  # noqa: SLF001

            async def flow() -> None:
                client = thread._ensure_consumer()  # noqa: SLF001
                if pause:
                    client.pause(tp)
                else:
                    client.resume(tp)

            await asyncio.wait_for(thread.call_thread(flow), FLOW_CALL_S)
        except Exception as exc:  # noqa: BLE001 - e.g. stopping: the hold works unpaused
            log.warning("partition %s not %s: %r", partition, "paused" if pause else "resumed", exc)

    def _hold_crashed(self, exc: BaseException) -> None:
        # A bug (acking or recording failed): stop rather than hold the partition for ever.
        self.health.fatal = f"held partition retry failed: {type(exc).__name__}: {exc}"[:500]
        os.kill(os.getpid(), signal.SIGTERM)

    def _committer_done(self, committer: asyncio.Future[None]) -> None:
        """The committer only ends by cancellation; anything else is a bug: stop the worker
        (as the agent does) rather than leave decoded records waiting for nobody."""
        if committer.cancelled() or committer.exception() is None:
            return
        exc = committer.exception()
        log.critical("committer failed; stopping the worker so no record is skipped", exc_info=exc)
        self.health.fatal = f"committer failed: {type(exc).__name__}: {exc}"[:500]
        os.kill(os.getpid(), signal.SIGTERM)

    async def _commit_in_order(
        self, holds: Holds[Chunk, BatchResult], pending: GroupCommit
    ) -> None:
        """Commit the gathered chunks one after another; what commits is acked (`holds`)."""
        while True:
            chunk = await pending.take()
            await holds.commit(chunk)
            pending.done()

    @staticmethod
    async def _ack(stream: faust.StreamT[bytes], chunk: Chunk) -> None:
        for event in chunk.events:
            await stream.ack(event)

    async def attempt(self, chunk: Chunk) -> BatchResult:
        """Dead-letter the chunk's poison, then write it, once (raises what failed)."""
        writer = await self._ensure_writer()
        for poison in chunk.batch.poison:
            position = (poison.partition, poison.offset)
            if position in self._dead_lettered or poison.offset <= self.applied.get(
                poison.partition, -1
            ):
                continue
            await dead_letter(
                self._send, self.settings.dlq_topic, self.settings.topic, poison,
                chunk.keys.get(position),
            )  # fmt: skip
            self._dead_lettered.add(position)
            log.warning("dead-lettered %s:%s: %s", *position, poison.reason)
        result = await apply_batch(
            writer, chunk.batch, highwater=self._highwaters(chunk), dead_letter=self._dead_letter
        )
        # Poison, and records the database refused (`_dead_letter`), are on the DLQ topic and
        # now recorded with the offset: a later redelivery is skipped by offset.
        self._dead_lettered.difference_update(
            (e.message.partition, e.message.offset) for e in chunk.events
        )
        return result

    async def _commit_once(self, chunk: Chunk) -> BatchResult:
        """`commit`, but a failure is raised at once: the hold retries (`holds.Holds`)."""
        token = _HOLDS_RETRY.set(True)
        try:
            return await self.commit(chunk)
        finally:
            _HOLDS_RETRY.reset(token)

    async def commit(self, chunk: Chunk) -> BatchResult:
        """Write the chunk whole; a failure is retried with capped backoff until it commits,
        unless a hold is in charge of retrying (`_commit_once`): then it is raised."""
        started = time.monotonic()
        delay = self.settings.retry_initial_s
        while True:
            try:
                result = await self.attempt(chunk)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: the partition waits and retries
                if _HOLDS_RETRY.get():
                    metrics.BATCH_RETRIES.inc()  # a failed write is always retried (held)
                    raise
                self.health.failed(exc)
                metrics.BATCH_RETRIES.inc()
                log.warning("batch failed (%r); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)
        self._record(result, chunk, time.monotonic() - started)
        self._grown.update(r.operation_id for r in chunk.batch.records)
        return result

    def _record(self, result: BatchResult, chunk: Chunk, seconds: float) -> None:
        self.health.committed()
        for partition, offset in result.last_offsets.items():
            self.applied[partition] = max(offset, self.applied.get(partition, -1))
        metrics.RECORDS.inc(len(chunk.events))
        metrics.EVENTS_APPLIED.inc(result.applied)
        metrics.DUPLICATES.inc(result.duplicates)
        metrics.CONFLICTS.inc(result.conflicts)
        metrics.DEAD_LETTERED.inc(len(result.poison))
        metrics.SKIPPED.inc(result.skipped_records)
        metrics.BATCH_SECONDS.observe(seconds)
        metrics.BATCH_EVENTS.observe(chunk.batch.event_count)

    # -- resources -----------------------------------------------------------------------------

    async def _ensure_writer(self) -> BatchWriter:
        async with self._writer_lock:  # the agent and the lag timer may both get here first
            if self._writer is None:
                if self._pool is None:
                    self._pool = await create_pool(
                        self.settings.database_url,
                        min_size=1,
                        max_size=self.settings.pool_max_size,
                        # A lock wait or a stuck statement ends as a transient error (its
                        # partition is held) instead of holding the chunk for ever.
                        server_settings={
                            "lock_timeout": str(self.settings.lock_timeout_ms),
                            "statement_timeout": str(self.settings.statement_timeout_ms),
                        },
                    )
                writer = BatchWriter(
                    self._pool,
                    topic=self.settings.topic,
                    consumer_group=self.settings.consumer_group,
                )
                for partition, offset in (await writer.positions()).items():
                    self.applied[partition] = max(offset, self.applied.get(partition, -1))
                self._writer = writer
            return self._writer

    async def _dead_letter(self, poison: Poison, key: bytes | None) -> None:
        """Put a record the database refused on the DLQ topic (`services.ledger.apply`), once:
        if recording it fails transiently, its partition's retry finds it refused again."""
        position = (poison.partition, poison.offset)
        if position in self._dead_lettered:
            return
        await dead_letter(self._send, self.settings.dlq_topic, self.settings.topic, poison, key)
        self._dead_lettered.add(position)
        log.warning("dead-lettered %s:%s: %s", poison.partition, poison.offset, poison.reason)

    async def _send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> object:
        producer = self.app.producer
        return await producer.send_and_wait(topic, key, value, None, None, headers)

    def _highwaters(self, chunk: Chunk) -> dict[int, int]:
        out: dict[int, int] = {}
        for event in chunk.events:
            tp = event.message.tp
            if tp.partition not in out:
                hw = self._highwater(tp)
                if hw is not None:
                    out[tp.partition] = hw
        return out

    def _highwater(self, tp: Any) -> int | None:
        try:
            hw = self.app.consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - unknown until the first fetch of the partition
            return None
        return hw if isinstance(hw, int) else None

    async def _refresh_lag(self) -> None:
        if self._writer is None:
            # Lag is measured against the positions stored in PostgreSQL: read them even when
            # no record has arrived yet, or an idle aggregator would report its whole history.
            try:
                await self._ensure_writer()
            except Exception as exc:  # noqa: BLE001 - the next tick tries again
                log.debug("positions not loaded yet: %r", exc)
                return
        assigned = self._assigned()
        self.health.keep_lag({tp.partition for tp in assigned})
        ends = await self._end_offsets(assigned)
        for tp in assigned:
            end = ends.get(tp.partition)
            if end is not None:
                lag = max(0, end - self.applied.get(tp.partition, -1) - 1)
                self.health.set_lag(tp.partition, lag)

    async def _refresh_dlq_depth(self) -> None:
        """Open dead letters, for /metrics and the readiness detail (not a readiness problem)."""
        if self._writer is not None:
            try:
                self.health.set_dlq_depth(await depth(self._writer.pool, self.settings.topic))
            except Exception as exc:  # noqa: BLE001 - the next tick tries again
                log.debug("dlq depth not read: %r", exc)

    async def _issue_checkpoints(self) -> None:
        # Only trees this process grew: it signs what it wrote, not rows that appeared otherwise.
        if self._pool is None or not self._grown:
            return
        if self._signer is None:
            self._signer = ledger_signer(self.tlog)
        grown = set(self._grown)
        try:
            _, waiting = await checkpoints.issue_due(
                self._pool, self._signer, self.tlog.checkpoint_interval_s, sorted(grown)
            )
            self._grown -= grown - set(waiting)  # keep what grew meanwhile, and what must wait
        except (OSError, asyncpg.PostgresError) as exc:  # the next tick tries again
            log.warning("checkpoints not issued: %r", exc)

    async def _sign_before_stop(self) -> None:
        """Sign what this process grew and has not signed yet, without waiting for the interval
        (bounded: a stop must not hang on the database)."""
        if not self._grown:
            return
        try:
            self._signer = self._signer or ledger_signer(self.tlog)
            await asyncio.wait_for(
                checkpoints.issue_due(self._pool, self._signer, 0.0, sorted(self._grown)),
                timeout=self.settings.ready_timeout_s,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("last checkpoints not issued at stop: %r", exc)

    def _assigned(self) -> list[Any]:
        """This instance's partitions of the topic (none before the first assignment)."""
        try:
            assigned = self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - not subscribed yet
            return []
        return sorted((tp for tp in assigned if tp.topic == self.settings.topic), key=str)

    async def _end_offsets(self, assigned: list[Any]) -> dict[int, int]:
        """Each partition's end: the broker's (asked every lag_probe_s), or the consumer's."""
        partitions = [tp.partition for tp in assigned]
        if partitions and time.monotonic() - self._probed_at >= self.lag_probe_s:
            self._probed_at = time.monotonic()
            answer = await self.broker.end_offsets(self.settings.topic, partitions)
            self._broker_ends = answer or {}  # no answer: fall back to the consumer's highwater
        ends: dict[int, int] = {}
        for tp in assigned:
            # Both are lower bounds of the true end, taken at different times: use the larger.
            seen = (self._broker_ends.get(tp.partition), self._highwater(tp))
            known = [end for end in seen if end is not None]
            if known:
                ends[tp.partition] = max(known)
        return ends

    async def close(self) -> None:
        if self._pool is not None:
            await self._sign_before_stop()
            pool, self._pool, self._writer = self._pool, None, None
            try:  # a connection stuck in a query (a lock wait) must not hold the stop up
                await asyncio.wait_for(pool.close(), POOL_CLOSE_S)
            except TimeoutError:
                pool.terminate()


class HealthService(Service):
    """Runs the health server for the lifetime of the faust worker."""

    def __init__(self, aggregator: Aggregator, **kwargs: Any) -> None:
        self.aggregator = aggregator
        self._runner: Any = None
        self.broker = aggregator.broker  # one client for readiness and the lag probe
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.aggregator.settings
        self._runner = await start_health_server(
            self.aggregator.health, s.host, s.port, self.broker
        )
        log.info("health server on http://%s:%s", s.host, s.port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.broker.close()
        await self.aggregator.close()
