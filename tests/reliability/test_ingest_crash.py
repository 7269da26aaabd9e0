"""Ingest SIGKILLed while requests are in flight: clients retry with the same event ids.

A kill between the broker's acknowledgement and the HTTP reply leaves a record on the log that
no device heard about (an *orphan*); its device sends the events again, so the log holds them
twice and the ledger must still count them once. To land in that window on purpose, ingest is
frozen (SIGSTOP) then SIGKILLed: produce requests already sent still reach the broker, and no
reply goes out. Orphans are counted while ingest is down (nothing is in flight then): records
on the topic minus the (partition, offset) positions devices were told about. The test kills
at least 10 times, and keeps going (up to 30) until at least one kill has made an orphan.
"""

from __future__ import annotations

import asyncio
import random

from .checker import check, topic_end_offsets
from .conftest import Cluster
from .oracle import Oracle, devices_for

KILLS = 10
MAX_KILLS = 30


async def test_ingest_sigkill_between_produce_and_reply(cluster: Cluster, record_result) -> None:
    ingest = cluster.spawn("ingest")
    cluster.spawn("aggregator")
    oracle = Oracle([ingest.url])
    devices = devices_for(cluster.operations(2), 4, batch_ratio=0.7)
    load = asyncio.create_task(oracle.run(devices, pause_s=0.0))
    rng = random.Random(4)  # noqa: S311
    orphans = 0
    while ingest.kills < KILLS or (orphans == 0 and ingest.kills < MAX_KILLS):
        await asyncio.sleep(rng.uniform(1.0, 2.5))
        await asyncio.to_thread(ingest.freeze_then_kill)
        await asyncio.sleep(0.3)  # let devices read any reply that did get out
        records = sum((await topic_end_offsets(cluster.bootstrap, cluster.topic)).values())
        orphans = records - len(oracle.fates.positions)
        await asyncio.to_thread(ingest.start)
    oracle.stop(drain_s=30)
    fates = await load
    report = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group], timeout_s=180,
    )  # fmt: skip
    resent = report.topic_event_copies - report.acked - report.conflicts_sent
    record_result(report, kills=ingest.kills, orphan_records=orphans, resent_event_copies=resent)
    # Evidence the window was hit: records written whose reply was lost, their events resent.
    assert orphans > 0 and resent > 0, (orphans, report.line())
    assert report.ok, report.explain()
