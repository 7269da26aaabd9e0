"""A private PostgreSQL stopped for 30 s under load.

Ingest needs only Kafka, so it keeps answering 202; the aggregator's batch fails, it retries with
the partition waiting and reports not-ready; query answers 503 (Retry-After) rather than 500;
when PostgreSQL is back everything catches up on its own, with no restart.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from services.stack.devissuer.tokens import dev_token

from .checker import check
from .conftest import Cluster
from .faults import PrivateStack
from .oracle import Oracle, devices_for

DOWN_S = 30.0


async def test_postgres_down_30s_under_load(
    cluster: Cluster, private_postgres: PrivateStack, record_result
) -> None:
    cluster.dsn = private_postgres.address
    ingest = cluster.spawn("ingest")
    aggregator = cluster.spawn("aggregator")
    query = cluster.spawn("query")
    ops = cluster.operations(2)
    reader = {"Authorization": f"Bearer {dev_token(role='auditor')}"}
    totals_url = f"{query.url}/v1/operations/{sorted(ops)[0]}/totals"
    oracle = Oracle([ingest.url])
    load = asyncio.create_task(oracle.run(devices_for(ops, 3), pause_s=0.05))
    await asyncio.sleep(5)
    private_postgres.stop()
    stopped = time.monotonic()
    acked_at_stop = len(oracle.fates.acked)
    readiness: list[int] = []
    reads: set[tuple[int, str | None]] = set()
    async with httpx.AsyncClient(timeout=15) as client:
        while time.monotonic() - stopped < DOWN_S:
            await asyncio.sleep(2)
            readiness.append((await client.get(f"{aggregator.url}/readyz")).status_code)
            if time.monotonic() - stopped > 5:  # past the cache of the last totals
                resp = await client.get(totals_url, headers=reader)
                reads.add((resp.status_code, resp.headers.get("retry-after")))
    acked_while_down = len(oracle.fates.acked) - acked_at_stop
    restart_s = await asyncio.to_thread(private_postgres.start)
    await asyncio.sleep(5)
    oracle.stop(drain_s=30)
    fates = await load
    report = await check(
        fates, dsn=cluster.dsn, bootstrap=cluster.bootstrap, topic=cluster.topic,
        groups=[cluster.group], timeout_s=180,
    )  # fmt: skip
    async with httpx.AsyncClient(timeout=5) as client:
        ready_after = (await client.get(f"{aggregator.url}/readyz")).status_code
        read_after = (await client.get(totals_url, headers=reader)).status_code
    record_result(
        report, acked_while_db_down=acked_while_down, aggregator_readyz_while_down=readiness,
        aggregator_readyz_after=ready_after, pg_restart_s=round(restart_s, 1),
        query_totals_while_down=sorted(reads, key=str), query_totals_after=read_after,
    )  # fmt: skip
    # Field devices kept recording while the database was down.
    assert acked_while_down > 100
    # The aggregator said it was not ready while it could not write, and recovered by itself.
    assert 503 in readiness, readiness
    assert aggregator.starts == 1 and aggregator.alive() and ready_after == 200
    # Readers are told to come back later, not shown a server error; then served again.
    assert reads and all(status == 503 and retry for status, retry in reads), reads
    assert read_after == 200
    assert report.ok, report.explain()
