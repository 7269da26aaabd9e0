"""Three brokers: the leader of the busiest partitions SIGKILLed and restarted, twice, under load.

Leadership moves to the in-sync followers; ingest and the aggregators follow it without a
restart, and nothing acknowledged is lost or counted twice.
"""

from __future__ import annotations

import asyncio
import time

from .cluster import FaultRun, PrivateCluster, busiest_leader
from .cluster_driver import run_fault
from .conftest import Cluster

ROUNDS = 2
DOWN_S = 8.0


async def test_leader_of_busy_partitions_sigkilled_and_restarted(
    cluster3: Cluster, kafka_cluster: PrivateCluster, record_result
) -> None:
    async def fault(run: FaultRun) -> None:
        run.begin()
        rounds = []
        for n in range(ROUNDS):
            victim = await busiest_leader(run.kc, run.topic, await run.ends())
            run.kc.kill(victim)
            killed = time.monotonic()
            if n == 0:
                run.rotate_aggregators()
            await asyncio.sleep(max(0.0, DOWN_S - (time.monotonic() - killed)))
            restart_s = await asyncio.to_thread(run.kc.start, victim)
            in_sync_s = await run.kc.wait_in_sync(run.topic)
            rounds.append({"killed": f"kafka-{victim}", "down_s": round(time.monotonic()
                           - killed - restart_s - in_sync_s, 1), "restart_s": round(restart_s, 1),
                           "back_in_sync_s": round(in_sync_s, 1)})  # fmt: skip
            # Leaders moved away from the victim while it was down.
            leaders = {p["leader"] for p in await run.kc.describe(run.topic)}
            rounds[-1]["leaders_after"] = sorted(leaders)
            if n < ROUNDS - 1:
                await asyncio.sleep(5)
        run.notes["rounds"] = rounds
        run.end()

    await run_fault(cluster3, kafka_cluster, fault, record_result)
