"""The rebuild's first pass split over worker processes, each owning a share of the partitions.

Decoding, validating and planning a batch is Python work (one core per process); partitions
are independent (an operation lives in one partition, and the writer's locks are ordered), so
W processes each replaying every W-th partition write the same shadow as one process would.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
import queue as queue_mod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.queues import Queue
from typing import Any

from services.audit.bulk import BulkWriter, IdsAcrossPartitions, MemoryBound, ReplayWithLookups
from services.audit.replay import LogReplayer
from services.common.db import create_pool
from services.common.gc_tuning import tune_gc
from services.ledger.writer import BatchWriter


@dataclass(frozen=True, slots=True)
class Share:
    """What one worker replays: where, which partitions, from and to which offsets."""

    dsn: str
    kafka: Any  # services.audit.rebuild.Kafka (a bootstrap string or settings)
    topic: str
    schema: str
    group: str
    partitions: tuple[int, ...]
    starts: dict[int, int]
    targets: dict[int, int]
    until: datetime | None
    derived: bool = True  # False: totals and rollups derived after the load
    bulk: bool = False  # a `BulkWriter` (what it would look up kept in memory)
    max_events: int | None = None  # the bulk writer's bound (None: unbounded)


class _Reporter:
    """Tells the parent of each committed batch."""

    def __init__(self, q: Queue[Any]) -> None:
        self.q = q

    def started(self, total_records: int) -> None:
        pass  # the parent knows the total

    def advanced(self, records: int, events: int) -> None:
        self.q.put(("progress", records, events))
        # A bulk writer keeps each batch's fold state for the rest of the pass: freezing it
        # keeps the collector from walking a heap that only grows (what is garbage now was
        # freed by reference counting; cycles left in a batch stay until the worker exits).
        gc.freeze()

    def phase(self, name: str) -> None:
        pass  # the parent's


async def _replay(share: Share, q: Queue[Any]) -> dict[str, int]:
    pool = await create_pool(share.dsn, min_size=1, max_size=2)
    try:
        writer: BatchWriter
        if share.bulk:
            writer = BulkWriter(
                pool, topic=share.topic, consumer_group=share.group, schema=share.schema,
                max_events=share.max_events,
            )  # fmt: skip
        else:
            writer = BatchWriter(
                pool, topic=share.topic, consumer_group=share.group, schema=share.schema,
                notify=False, derived=share.derived,
            )  # fmt: skip
        replayer = LogReplayer(
            share.kafka, share.topic, writer, until=share.until,
            progress=_Reporter(q), partitions=share.partitions,
        )  # fmt: skip
        await replayer.start()
        try:
            replayer.positions.update({p: share.starts[p] for p in share.partitions})
            await replayer.read_to(share.targets)
        finally:
            await replayer.stop()
        return dict(vars(replayer.counts))
    finally:
        await pool.close()


def _worker(share: Share, q: Queue[Any]) -> None:
    # Decoding allocates a dozen objects per event: freeze the imports' heap and collect young
    # objects less often, as the aggregator does (services.common.gc_tuning).
    tune_gc("services.audit.bulk", "services.audit.replay")
    try:
        q.put(("done", asyncio.run(_replay(share, q))))
    except ReplayWithLookups as exc:
        q.put(("lookups", isinstance(exc, MemoryBound), str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        q.put(("error", f"{type(exc).__name__}: {exc}"))


async def replay_in_processes(
    *,
    dsn: str,
    kafka: Any,
    topic: str,
    schema: str,
    group: str,
    starts: Mapping[int, int],
    targets: Mapping[int, int],
    until: datetime | None,
    workers: int,
    progress: Any,
    derived: bool = True,
    bulk: bool = False,
    max_events: int | None = None,
) -> dict[str, int]:
    """Replay every partition from ``starts`` to ``targets`` in ``workers`` processes.

    With ``max_events`` (bulk only), the workers together keep at most that many events: each
    one its equal share.
    """
    partitions: Sequence[int] = sorted(p for p in targets if targets[p] > starts.get(p, 0))
    ctx = mp.get_context("spawn")  # no fork of a process with a running loop and threads
    q: Queue[Any] = ctx.Queue()
    procs = []
    n = min(workers, len(partitions))
    share_of = None if max_events is None else max_events // max(n, 1)
    for w in range(n):
        mine = tuple(partitions[w::workers])
        share = Share(
            dsn, kafka, topic, schema, group, mine,
            {p: starts.get(p, 0) for p in mine}, {p: targets[p] for p in mine}, until, derived,
            bulk, share_of,
        )  # fmt: skip
        proc = ctx.Process(target=_worker, args=(share, q), daemon=True)
        proc.start()
        procs.append(proc)
    totals: dict[str, int] = {}
    errors: list[str] = []
    across: list[str] = []
    bound: list[str] = []
    running = len(procs)
    try:
        while running:
            try:
                msg = await asyncio.to_thread(q.get, True, 0.5)
            except queue_mod.Empty:
                if not any(p.is_alive() for p in procs):
                    errors.append("a rebuild worker died without reporting")
                    break
                continue
            if msg[0] == "progress":
                progress.advanced(msg[1], msg[2])
            elif msg[0] == "done":
                running -= 1
                for k, v in msg[1].items():
                    totals[k] = totals.get(k, 0) + v
            elif msg[0] == "lookups":
                running -= 1
                (bound if msg[1] else across).append(msg[2])
            else:
                running -= 1
                errors.append(msg[1])
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    if errors:
        raise RuntimeError("rebuild worker failed: " + "; ".join(errors))
    if bound:
        raise MemoryBound("; ".join(bound))
    if across:
        raise IdsAcrossPartitions("; ".join(across))
    return totals


async def first_pass(
    replayer: LogReplayer,
    targets: dict[int, int],
    *,
    dsn: str | None,
    shadow: str,
    group: str,
    workers: int,
    bulk: bool = False,
    max_events: int | None = None,
) -> None:
    """Replay up to ``targets``: in this process (with ``replayer``'s writer), or split over
    ``workers`` processes (each with a `BulkWriter` if ``bulk``, keeping together at most
    ``max_events``)."""
    if workers <= 1 or dsn is None:
        await replayer.read_to(targets)
        return
    starts = dict(replayer.positions)
    replayer.progress.started(sum(max(0, targets[p] - starts.get(p, 0)) for p in targets))
    counts = await replay_in_processes(
        dsn=dsn, kafka=replayer.kafka, topic=replayer.topic, schema=shadow, group=group,
        starts=starts, targets=targets, until=replayer.until, workers=workers,
        progress=replayer.progress, derived=replayer.writer.derived, bulk=bulk,
        max_events=max_events,
    )  # fmt: skip
    for p, target in targets.items():
        replayer.positions[p] = max(replayer.positions.get(p, 0), target)
    c = replayer.counts
    c.records += counts.get("records", 0)
    c.events += counts.get("events", 0)
    c.duplicates += counts.get("duplicates", 0)
    c.conflicts += counts.get("conflicts", 0)
    c.poison += counts.get("poison", 0)
