"""PostgreSQL away for twenty seconds mid-run: the partition waits, then nothing is lost."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from schemas.examples import example_events
from schemas.parsing import parse_event
from schemas.tally import fold

from .conftest import PrivatePostgres
from .harness import (
    AggregatorProcess,
    Target,
    chain_problems,
    event_count,
    metrics_of,
    produce,
    submission,
    wait_applied,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


async def test_postgres_stopped_for_20_s_then_restarted_totals_exact(
    target: Target, private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    target.database_url = private_postgres.database_url
    op = f"outage-{target.topic}"
    base = [e for e in example_events() if e["type"] != "event_voided"]
    events = [
        base[i % len(base)] | {"event_id": str(uuid.uuid4()), "operation_id": op}
        for i in range(2000)
    ]
    records = [(op, submission(events[i : i + 20])) for i in range(0, len(events), 20)]
    aggregator = AggregatorProcess(target, tmp_path)
    try:
        await aggregator.start()
        await produce(target, records[:40])
        await wait_applied(target, 40)
        private_postgres.stop()
        await produce(target, records[40:])
        await asyncio.sleep(20)
        status, body = await aggregator.readyz()
        assert status == 503, body
        assert any("retrying" in p for p in body["problems"]), body
        assert await aggregator.metric("opsledger_aggregator_batch_retries_total") > 0
        await private_postgres.start()
        await wait_applied(target, len(records))
        expected = {k: v for k, v in fold(parse_event(e) for e in events).metrics.items() if v}
        assert await metrics_of(target.database_url, op) == expected
        assert await event_count(target.database_url, op) == len(events)
        assert await chain_problems(target.database_url, op) == []
        assert (await aggregator.readyz())[0] == 200
    finally:
        aggregator.stop()
