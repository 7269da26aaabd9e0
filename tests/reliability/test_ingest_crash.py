"""Ingest SIGKILLed while requests are in flight: clients retry with the same event ids.

A kill between the broker's acknowledgement and the HTTP reply leaves an event on the log that
its device never heard about; the device sends it again, so the log holds it twice and the
ledger must still count it once. To land in that window on purpose, ingest is frozen (SIGSTOP)
then SIGKILLed: produce requests already sent still reach the broker, and no reply goes out.
"""

from __future__ import annotations

import asyncio
import random

from .checker import check
from .conftest import Cluster
from .oracle import Oracle, devices_for

KILLS = 10


async def test_ingest_sigkill_between_produce_and_reply(cluster: Cluster, record_result) -> None:
    ingest = cluster.spawn("ingest")
    cluster.spawn("aggregator")
    oracle = Oracle([ingest.url])
    load = asyncio.create_task(oracle.run(devices_for(cluster.operations(2), 4), pause_s=0.0))
    rng = random.Random(4)  # noqa: S311
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(1.0, 2.5))
        # Frozen first, so the produce requests on the wire land while no reply can be sent.
        await asyncio.to_thread(ingest.freeze_then_kill)
        await asyncio.to_thread(ingest.start)
    oracle.stop(drain_s=30)
    fates = await load
    report = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group], timeout_s=180,
    )  # fmt: skip
    redelivered = report.topic_event_copies - report.acked - report.conflicts_sent
    record_result(report, kills=ingest.kills, retried_copies_on_topic=redelivered)
    assert ingest.kills == KILLS
    # Evidence the window was hit: events written to the log whose reply was lost, then resent.
    assert redelivered > 0, report.line()
    assert report.ok, report.explain()
