"""Bounded memory: a backlog of 500 maximum-size submissions keeps the aggregator's RSS bounded.

The figure is stated in docs/reliability.md; this test measures it (peak RSS of the aggregator
process while it works through the backlog) and fails above `RSS_LIMIT_MB`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from schemas.examples import example_events

from .harness import AggregatorProcess, Target, event_count, produce, submission, wait_applied

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

RECORDS = 500
RECORD_BYTES = 900_000
RSS_LIMIT_MB = float(os.environ.get("OPSLEDGER_TEST_RSS_LIMIT_MB", "400"))


def big_submission(op: str) -> tuple[bytes, int]:
    """One submission of about RECORD_BYTES (events with 500-character premises)."""
    base = next(e for e in example_events() if e["type"] == "warrant_executed")
    events: list[dict[str, Any]] = []
    while True:
        event = base | {
            "event_id": str(uuid.uuid4()), "operation_id": op,
            "payload": {"warrant_ref": f"W-{len(events)}", "premises": "x" * 500},
        }  # fmt: skip
        value = submission([*events, event])
        if len(value) > RECORD_BYTES:
            return submission(events), len(events)
        events.append(event)


async def test_a_backlog_of_500_maximum_size_submissions_stays_under_the_stated_rss(
    target: Target, tmp_path: Path
) -> None:
    import psutil  # type: ignore[import-untyped]

    ops = [f"mem-{n}-{target.topic}" for n in range(RECORDS)]
    values = [(op, big_submission(op)) for op in ops]
    assert min(len(v) for _, (v, _) in values) > RECORD_BYTES - 2_000
    await produce(target, [(op, v) for op, (v, _) in values])
    aggregator = AggregatorProcess(target, tmp_path)
    peak = 0
    try:
        await aggregator.start(timeout_s=120)
        assert aggregator.proc is not None
        proc = psutil.Process(aggregator.proc.pid)
        waiting = asyncio.ensure_future(wait_applied(target, RECORDS, timeout_s=600))
        while not waiting.done():
            peak = max(peak, proc.memory_info().rss)
            await asyncio.sleep(0.1)
        await waiting
    finally:
        aggregator.stop()
    peak_mb = peak / 2**20
    print(f"peak RSS {peak_mb:.0f} MB over {RECORDS} records of {RECORD_BYTES} bytes")
    assert sum([await event_count(target.database_url, op) for op in ops[:3]]) == sum(
        n for _, (_, n) in values[:3]
    )
    assert peak_mb < RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB >= {RSS_LIMIT_MB} MB"
