"""The shared shape of every cluster fault test: load, fault (with an aggregator added and one
removed while it lasts), recovery without restarts, then the checker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from .checker import Report, check
from .cluster import FaultRun, PrivateCluster, Watch, wait_acks_after
from .conftest import Cluster
from .oracle import Oracle, devices_for
from .test_aggregator_crash import wait_progress

Fault = Callable[[FaultRun], Awaitable[None]]


async def run_fault(
    cluster: Cluster, kc: PrivateCluster, fault: Fault, record_result: Any
) -> tuple[FaultRun, Report]:
    """Run ``fault`` under load on the three-broker cluster and check the ledger afterwards."""
    ingest = cluster.spawn("ingest")
    aggregators = [cluster.spawn("aggregator"), cluster.spawn("aggregator")]
    oracle = Oracle([ingest.url])
    load = asyncio.create_task(oracle.run(devices_for(cluster.operations(3), 2), pause_s=0.05))
    run = FaultRun(kc, cluster.topic, ingest, aggregators,
                   lambda: cluster.spawn("aggregator"), oracle)  # fmt: skip
    await wait_progress(cluster, timeout_s=90)
    await asyncio.sleep(3)
    watch = Watch(ingest, run.aggregators)
    watch.start()
    try:
        await fault(run)
        await run.rotation_done()
    finally:
        readiness = await watch.stop()
    assert run.removed, "the fault did not add and remove an aggregator"
    await wait_acks_after(run)
    await asyncio.sleep(5)
    oracle.stop(drain_s=60)
    fates = await asyncio.wait_for(load, 120)
    drained = time.monotonic()
    report = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group], timeout_s=180,
    )  # fmt: skip
    # Ready again once caught up (readiness answers are cached about a second): bounded poll.
    async with httpx.AsyncClient(timeout=5) as client:
        deadline = time.monotonic() + 15
        while True:
            ingest_ready = (await client.get(f"{ingest.url}/readyz")).status_code
            answers = [await client.get(f"{a.url}/readyz") for a in run.aggregators]
            aggregators_ready = [r.status_code for r in answers]
            if (ingest_ready, aggregators_ready) == (200, [200, 200]):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready after catching up: ingest {ingest_ready}, "
                                     f"aggregators {[r.text[:300] for r in answers]}")  # fmt: skip
            await asyncio.sleep(1.0)
    record_result(
        report,
        fault=run.notes,
        **run.recovery(),
        readyz_during_fault=readiness,
        caught_up_after_load_s=round(time.monotonic() - drained, 1),
        ingest_readyz_after=ingest_ready,
        aggregators_readyz_after=aggregators_ready,
    )
    # Back without restarts: the same ingest and the two current aggregators, all ready.
    assert ingest.starts == 1 and ingest.alive(), ingest.tail()
    assert all(a.starts == 1 and a.alive() for a in run.aggregators)
    assert ingest_ready == 200 and aggregators_ready == [200, 200], (
        ingest_ready,
        aggregators_ready,
    )
    assert report.ok, report.explain()
    return run, report
