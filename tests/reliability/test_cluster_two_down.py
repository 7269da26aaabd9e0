"""Three brokers, two SIGKILLed for 30 s under load: with min.insync.replicas=2 no write can be
acknowledged, so ingest answers 503 with Retry-After and never a 202 it cannot back; once the
two are back, ingest and the aggregators resume on their own."""

from __future__ import annotations

import asyncio
import time

import httpx

from services.stack.devissuer.tokens import dev_token

from .cluster import FaultRun, PrivateCluster
from .cluster_driver import run_fault
from .conftest import Cluster
from .oracle import Device

DOWN_S = 30.0


async def test_two_of_three_brokers_down_for_30s(
    cluster3: Cluster, kafka_cluster: PrivateCluster, record_result
) -> None:
    # Probes go to an operation of their own, outside the oracle's (none may land anyway).
    probe_op = f"{cluster3.name}-probe"
    token = dev_token(role="field", operations=[probe_op], subject="probe")
    probe = Device("probe", probe_op, token, seed=77)
    probes: list[tuple[int, str | None]] = []

    async def fault(run: FaultRun) -> None:
        run.begin()
        for node in (2, 3):
            run.kc.kill(node)
        killed = time.monotonic()
        settle_s = 7.0  # requests already in flight may still be answered (bounded at 5 s)
        async with httpx.AsyncClient(timeout=15) as client:
            headers = {"Authorization": f"Bearer {probe.token}"}
            await asyncio.sleep(2)
            run.rotate_aggregators()
            while time.monotonic() - killed < DOWN_S:
                await asyncio.sleep(1.0)
                if time.monotonic() - killed < settle_s:
                    continue
                resp = await client.post(
                    f"{run.ingest.url}/v1/events", json=probe.event(), headers=headers
                )
                probes.append((resp.status_code, resp.headers.get("retry-after")))
        quiet_from, quiet_to = killed + settle_s, time.monotonic()
        restart_s = await asyncio.to_thread(run.kc.start, 2, 3)
        run.end()
        in_sync_s = await run.kc.wait_in_sync(run.topic)
        during = run.oracle.fates.answers_between(quiet_from, quiet_to)
        run.notes.update(
            killed=["kafka-2", "kafka-3"], down_s=round(quiet_to - killed, 1),
            restart_s=round(restart_s, 1), back_in_sync_s=round(in_sync_s, 1),
            probes=sorted({f"{s} retry-after={r}" for s, r in probes}),
            answers_with_one_broker=during,
        )  # fmt: skip
        # One broker cannot make a write durable on two: every answer is a refusal to retry.
        assert probes and all(s == 503 and r for s, r in probes), probes
        assert not any(a.startswith("2") for a in during), during

    await run_fault(cluster3, kafka_cluster, fault, record_result)
