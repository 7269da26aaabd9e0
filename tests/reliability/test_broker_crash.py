"""A private Kafka broker SIGKILLed and restarted under load.

While it is down, ingest answers 503 with Retry-After (never a 202 it cannot back); once it is
back, ingest accepts again without a restart and the aggregator resumes and catches up.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from .checker import check
from .conftest import Cluster
from .faults import PrivateStack
from .oracle import Device, Oracle, devices_for


@pytest.mark.parametrize(
    ("outages", "down_s"),
    # Short outages, and one longer than the group session and the producer's bounds.
    [(2, 8.0), (1, 40.0)],
    ids=["2x8s", "1x40s"],
)
async def test_broker_sigkill_and_restart_under_load(
    cluster: Cluster, private_kafka: PrivateStack, record_result, outages: int, down_s: float
) -> None:
    cluster.bootstrap = private_kafka.address
    ingest = cluster.spawn("ingest")
    aggregator = cluster.spawn("aggregator")
    ops = cluster.operations(3)
    probe_op = sorted(ops)[2]  # probes may land despite a 503: keep them out of the oracle's ops
    probe_device = Device("probe", probe_op, ops.pop(probe_op), seed=99)
    oracle = Oracle([ingest.url])
    load = asyncio.create_task(oracle.run(devices_for(ops, 3), pause_s=0.05))
    observed = []
    for _ in range(outages):
        await asyncio.sleep(5)
        private_kafka.kill()
        killed = time.monotonic()
        probes = []
        async with httpx.AsyncClient(timeout=15) as client:
            headers = {"Authorization": f"Bearer {probe_device.token}"}
            while time.monotonic() - killed < down_s:
                await asyncio.sleep(1.0)
                resp = await client.post(
                    f"{ingest.url}/v1/events", json=probe_device.event(), headers=headers
                )
                probes.append((resp.status_code, resp.headers.get("retry-after")))
            ready_ingest = (await client.get(f"{ingest.url}/readyz")).status_code
            ready_aggregator = (await client.get(f"{aggregator.url}/readyz")).json()
        restart_s = await asyncio.to_thread(private_kafka.start)
        observed.append(
            {
                "probes": sorted(set(probes)),
                "ingest_readyz": ready_ingest,
                "aggregator_readyz": ready_aggregator,
                "broker_restart_s": round(restart_s, 1),
            }
        )
        # Every write the broker could not take is refused and may be retried: 503 Retry-After.
        assert all(status == 503 and retry for status, retry in probes), probes
        assert ready_ingest == 503
    # After the outage ingest accepts again, with no restart of its own.
    await asyncio.sleep(10)
    before = oracle.fates.answers["202"] + oracle.fates.answers["207"]
    await asyncio.sleep(5)
    assert oracle.fates.answers["202"] + oracle.fates.answers["207"] > before, oracle.fates.answers
    oracle.stop(drain_s=60)
    fates = await load
    report = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group], timeout_s=180,
    )  # fmt: skip
    async with httpx.AsyncClient(timeout=5) as client:
        aggregator_ready = (await client.get(f"{aggregator.url}/readyz")).status_code
    record_result(report, outages=observed, aggregator_readyz_after=aggregator_ready)
    # The aggregator rode out both outages on its own: never restarted, ready, caught up.
    assert aggregator.starts == 1 and aggregator.alive() and aggregator_ready == 200
    assert report.ok, report.explain()
