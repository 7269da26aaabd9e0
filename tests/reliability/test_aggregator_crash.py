"""The aggregator SIGKILLed again and again under load: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import random
import time

from .checker import applied_offsets, check
from .conftest import Cluster
from .oracle import Oracle, devices_for

KILLS = 10


async def test_aggregator_sigkill_repeatedly_under_load(cluster: Cluster, record_result) -> None:
    ingest = cluster.spawn("ingest")
    aggregator = cluster.spawn("aggregator")
    oracle = Oracle([ingest.url])
    load = asyncio.create_task(oracle.run(devices_for(cluster.operations(2), 3), pause_s=0.05))
    rng = random.Random(8)  # noqa: S311
    started = time.monotonic()
    progress = []
    for _ in range(KILLS):
        # Kill only a consumer that is applying batches, at a random instant: mid-batch often.
        progress.append(await wait_progress(cluster, timeout_s=60))
        await asyncio.sleep(rng.uniform(0.0, 0.6))
        aggregator.sigkill()
        await asyncio.to_thread(aggregator.start)
    oracle.stop(drain_s=30)
    fates = await load
    report = await check(
        fates,
        dsn=cluster.dsn,
        bootstrap=cluster.bootstrap,
        topic=cluster.topic,
        groups=[cluster.group],
        timeout_s=180,
    )
    record_result(
        report,
        kills=aggregator.kills,
        load_s=round(time.monotonic() - started, 1),
        seconds_to_progress_after_restart=progress,
    )
    assert aggregator.kills == KILLS
    assert report.acked > 500, report.line()
    assert report.ok, report.explain()


async def wait_progress(cluster: Cluster, timeout_s: float) -> float:
    """Seconds until the group's applied offsets in PostgreSQL move (a batch committed)."""
    started = time.monotonic()
    before = sum((await applied_offsets(cluster.dsn, cluster.group, cluster.topic)).values())
    while time.monotonic() - started < timeout_s:
        await asyncio.sleep(0.2)
        now = sum((await applied_offsets(cluster.dsn, cluster.group, cluster.topic)).values())
        if now > before:
            return round(time.monotonic() - started, 1)
    raise AssertionError(f"the aggregator made no progress in {timeout_s} s")
