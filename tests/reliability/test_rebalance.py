"""Two aggregators in one consumer group; one is SIGKILLed and restarted (rebalances) under load."""

from __future__ import annotations

import asyncio
import random

from .checker import check
from .conftest import Cluster
from .oracle import Oracle, devices_for
from .test_aggregator_crash import wait_progress

ROUNDS = 3


async def test_two_aggregators_one_killed_and_restarted(cluster: Cluster, record_result) -> None:
    ingest = cluster.spawn("ingest")
    aggregators = [cluster.spawn("aggregator"), cluster.spawn("aggregator")]
    oracle = Oracle([ingest.url])
    load = asyncio.create_task(oracle.run(devices_for(cluster.operations(4), 2), pause_s=0.05))
    rng = random.Random(5)  # noqa: S311
    for n in range(ROUNDS):
        await wait_progress(cluster, timeout_s=60)
        victim = aggregators[n % 2]
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        victim.sigkill()
        # The survivor takes the victim's partitions once its session expires.
        await wait_progress(cluster, timeout_s=60)
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        await asyncio.to_thread(victim.start)
    await asyncio.sleep(5)
    oracle.stop(drain_s=30)
    fates = await load
    report = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group], timeout_s=180,
    )  # fmt: skip
    record_result(report, kills=sum(a.kills for a in aggregators))
    assert all(a.alive() for a in aggregators)
    assert report.ok, report.explain()
