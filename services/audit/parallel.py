"""The rebuild's first pass split over worker processes, each owning a share of the partitions.

Decoding, validating and planning a batch is Python work (one core per process); partitions
are independent (an operation lives in one partition, and the writer's locks are ordered), so
W processes each replaying every W-th partition write the same shadow as one process would.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue as queue_mod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.queues import Queue
from typing import Any

from services.audit.replay import LogReplayer
from services.common.db import create_pool
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
    derived: bool = True  # False: a bulk load (totals and rollups derived after it)


class _Reporter:
    def __init__(self, q: Queue[Any]) -> None:
        self.q = q

    def started(self, total_records: int) -> None:
        pass  # the parent knows the total

    def advanced(self, records: int, events: int) -> None:
        self.q.put(("progress", records, events))


async def _replay(share: Share, q: Queue[Any]) -> dict[str, int]:
    pool = await create_pool(share.dsn, min_size=1, max_size=2)
    try:
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
    try:
        q.put(("done", asyncio.run(_replay(share, q))))
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
) -> dict[str, int]:
    """Replay every partition from ``starts`` to ``targets`` in ``workers`` processes."""
    partitions: Sequence[int] = sorted(p for p in targets if targets[p] > starts.get(p, 0))
    ctx = mp.get_context("spawn")  # no fork of a process with a running loop and threads
    q: Queue[Any] = ctx.Queue()
    procs = []
    for w in range(min(workers, len(partitions))):
        mine = tuple(partitions[w::workers])
        share = Share(
            dsn, kafka, topic, schema, group, mine,
            {p: starts.get(p, 0) for p in mine}, {p: targets[p] for p in mine}, until, derived,
        )  # fmt: skip
        proc = ctx.Process(target=_worker, args=(share, q), daemon=True)
        proc.start()
        procs.append(proc)
    totals: dict[str, int] = {}
    errors: list[str] = []
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
    return totals


async def first_pass(
    replayer: LogReplayer,
    targets: dict[int, int],
    *,
    dsn: str | None,
    shadow: str,
    group: str,
    workers: int,
) -> None:
    """Replay up to ``targets``: in this process, or split over ``workers`` processes."""
    if workers <= 1 or dsn is None:
        await replayer.read_to(targets)
        return
    starts = dict(replayer.positions)
    replayer.progress.started(sum(max(0, targets[p] - starts.get(p, 0)) for p in targets))
    counts = await replay_in_processes(
        dsn=dsn, kafka=replayer.kafka, topic=replayer.topic, schema=shadow, group=group,
        starts=starts, targets=targets, until=replayer.until, workers=workers,
        progress=replayer.progress, derived=replayer.writer.derived,
    )  # fmt: skip
    for p, target in targets.items():
        replayer.positions[p] = max(replayer.positions.get(p, 0), target)
    c = replayer.counts
    c.records += counts.get("records", 0)
    c.events += counts.get("events", 0)
    c.duplicates += counts.get("duplicates", 0)
    c.conflicts += counts.get("conflicts", 0)
    c.poison += counts.get("poison", 0)
