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
MAX_S = 60.0


async def test_one_broker_partitioned_for_20s_then_healed(
    cluster3: Cluster, kafka_cluster: PrivateCluster, record_result
) -> None:
    async def fault(run: FaultRun) -> None:
        victim = await busiest_leader(run.kc, run.topic, await run.ends())
        isolation = run.kc.isolation(victim)
        run.begin()
        isolation.cut()
        moved_at: float | None = None
        leaders_during: list[int] = []
        try:
            run.rotate_aggregators()
            # The majority fences the node once its session lapses (6 s) and takes over its
            # partitions. The cut lasts CUT_S; on a box so loaded that the controller has not
            # done so yet, it lasts until it has (bounded), so the heal always meets a cluster
            # that moved on without the node.
            while run.since_start() < CUT_S or (moved_at is None and run.since_start() < MAX_S):
                await asyncio.sleep(1.0)
                if moved_at is None and run.since_start() >= 5:
                    leaders = sorted({p["leader"] for p in await run.kc.describe(run.topic)})
                    if victim not in leaders:
                        moved_at, leaders_during = run.since_start(), leaders
        finally:
            isolation.heal()
        run.end()
        healed = time.monotonic()
        in_sync_s = await run.kc.wait_in_sync(run.topic)
        run.notes.update(
            cut_off=f"kafka-{victim}", cut_s=round(healed - run.fault_start, 1),
            leaders_moved_after_s=round(moved_at, 1) if moved_at is not None else None,
            leaders_during=leaders_during, back_in_sync_s=round(in_sync_s, 1),
            alive_throughout=run.kc.pid(victim) is not None,
        )  # fmt: skip
        assert moved_at is not None, f"kafka-{victim} still led partitions after {MAX_S} s cut"

    await run_fault(cluster3, kafka_cluster, fault, record_result)
