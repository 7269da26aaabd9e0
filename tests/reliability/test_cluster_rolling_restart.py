"""Three brokers restarted one after the other (controlled shutdown, start, back in sync), under
load: the upgrade every operator performs. Nothing acknowledged is lost or counted twice."""

from __future__ import annotations

import asyncio

from .cluster import FaultRun, PrivateCluster
from .cluster_driver import run_fault
from .conftest import Cluster


async def test_rolling_restart_of_all_three(
    cluster3: Cluster, kafka_cluster: PrivateCluster, record_result
) -> None:
    async def fault(run: FaultRun) -> None:
        run.begin()
        steps = []
        for node in (1, 2, 3):
            stop_s = await asyncio.to_thread(run.kc.stop, node)
            if node == 2:
                run.rotate_aggregators()
            start_s = await asyncio.to_thread(run.kc.start, node)
            in_sync_s = await run.kc.wait_in_sync(run.topic)
            steps.append(
                {
                    "node": f"kafka-{node}",
                    "stop_s": round(stop_s, 1),
                    "start_s": round(start_s, 1),
                    "back_in_sync_s": round(in_sync_s, 1),
                }
            )
        run.end()
        run.notes["steps"] = steps

    await run_fault(cluster3, kafka_cluster, fault, record_result)
