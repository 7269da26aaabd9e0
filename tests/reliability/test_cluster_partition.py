"""Three brokers: one cut off from the other two and from every client for 20 s (packets
dropped with nftables on its own loopback address, ports and group id), then healed, under load.

The majority fences it and takes over its partitions; a write can only be acknowledged by the
majority side, so nothing acknowledged is lost when it rejoins and truncates.
"""

from __future__ import annotations

import asyncio
import time

from .cluster import FaultRun, PrivateCluster, busiest_leader
from .cluster_driver import run_fault
from .conftest import Cluster

CUT_S = 20.0


async def test_one_broker_partitioned_for_20s_then_healed(
    cluster3: Cluster, kafka_cluster: PrivateCluster, record_result
) -> None:
    async def fault(run: FaultRun) -> None:
        victim = await busiest_leader(run.kc, run.topic, await run.ends())
        isolation = run.kc.isolation(victim)
        run.begin()
        isolation.cut()
        try:
            run.rotate_aggregators()
            # By now the majority has fenced it (session 6 s) and moved its leaderships.
            await asyncio.sleep(max(0.0, 12.0 - run.since_start()))
            leaders_during = sorted({p["leader"] for p in await run.kc.describe(run.topic)})
            await asyncio.sleep(max(0.0, CUT_S - run.since_start()))
        finally:
            isolation.heal()
        run.end()
        healed = time.monotonic()
        in_sync_s = await run.kc.wait_in_sync(run.topic)
        run.notes.update(
            cut_off=f"kafka-{victim}", cut_s=round(healed - run.fault_start, 1),
            leaders_during=leaders_during, back_in_sync_s=round(in_sync_s, 1),
            alive_throughout=run.kc.pid(victim) is not None,
        )  # fmt: skip
        assert victim not in leaders_during, leaders_during

    await run_fault(cluster3, kafka_cluster, fault, record_result)
