"""SIGTERM stops the aggregator within 10 s a restart repeats and loses nothing."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from schemas.examples import example_events
from schemas.parsing import parse_event
from schemas.tally import fold
from services.devtools.kafka import PrivateKafka
from services.devtools.procs import free_port

from .harness import (
    AggregatorProcess,
    Target,
    event_count,
    metrics_of,
    produce,
    submission,
    wait_applied,
)

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

STOP_WITHIN_S = 10.0


def fresh_events(op: str, n: int) -> list[dict[str, Any]]:
    base = [e for e in example_events() if e["type"] != "event_voided"]
    return [
        base[i % len(base)] | {"event_id": str(uuid.uuid4()), "operation_id": op} for i in range(n)
    ]


async def sigterm_seconds(aggregator: AggregatorProcess) -> float:
    """Send SIGTERM and return how long the process took to exit (SIGKILL after 30 s)."""
    assert aggregator.proc is not None
    started = time.monotonic()
    aggregator.proc.send_signal(signal.SIGTERM)
    while aggregator.proc.poll() is None and time.monotonic() - started < 30:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    took = time.monotonic() - started
    if aggregator.proc.poll() is None:
        aggregator.proc.kill()
        aggregator.proc.wait(timeout=10)
    return took


async def wait_problem(aggregator: AggregatorProcess, word: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = await aggregator.readyz()
        if status == 503 and any(word in p for p in body["problems"]):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the aggregator never reported {word!r}:\n{aggregator.tail()}")


async def test_sigterm_while_it_retries_a_failing_batch_stops_within_10_s(
    target: Target, tmp_path: Path
) -> None:
    # PostgreSQL unreachable: every batch fails and is retried while the partition waits.
    target.database_url = f"postgresql://opsledger@127.0.0.1:{free_port()}/opsledger"
    op = f"sigterm-{target.topic}"
    aggregator = AggregatorProcess(target, tmp_path, OPSLEDGER_AGGREGATOR_RETRY_MAX_S="5")
    try:
        await aggregator.start()
        await produce(target, [(op, submission(fresh_events(op, 5)))])
        await wait_problem(aggregator, "retrying")
        took = await sigterm_seconds(aggregator)
    finally:
        aggregator.stop()
    assert took < STOP_WITHIN_S, f"still running {took:.1f} s after SIGTERM:\n{aggregator.tail()}"


async def test_sigterm_while_its_batch_waits_on_a_lock_stops_within_10_s_and_resumes_exactly(
    target: Target, tmp_path: Path, database_url: str
) -> None:
    op = f"sigterm-lock-{target.topic}"
    first, second = fresh_events(op, 5), fresh_events(op, 6)
    aggregator = AggregatorProcess(target, tmp_path)
    blocker = await asyncpg.connect(database_url)
    try:
        await aggregator.start()
        await produce(target, [(op, submission(first))])
        await wait_applied(target, 1)
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE ledger.consumer_offsets IN ACCESS EXCLUSIVE MODE")
        await produce(target, [(op, submission(second))])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the batch's transaction is now waiting on the lock
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND $1 = ANY(pg_blocking_pids(pid))",
                blocker.get_server_pid(),
            )
            if waiting:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no batch waited on the lock")
        took = await sigterm_seconds(aggregator)
        await tx.rollback()
        assert took < STOP_WITHIN_S, f"still running {took:.1f} s after SIGTERM"
        await aggregator.start()
        await wait_applied(target, 2)
    finally:
        await blocker.close()
        aggregator.stop()
    assert await event_count(target.database_url, op) == len(first) + len(second)
    assert await metrics_of(target.database_url, op) == {
        k: v for k, v in fold(parse_event(e) for e in first + second).metrics.items() if v
    }


async def test_sigterm_while_the_broker_is_gone_stops_within_10_s_and_resumes_exactly(
    target: Target, private_kafka: PrivateKafka, tmp_path: Path
) -> None:
    target.kafka = private_kafka.bootstrap
    op = f"sigterm-broker-{target.topic}"
    first, second = fresh_events(op, 4), fresh_events(op, 3)
    aggregator = AggregatorProcess(target, tmp_path)
    try:
        await aggregator.start()
        await produce(target, [(op, submission(first))])
        await wait_applied(target, 1)
        await private_kafka.kill()
        await wait_problem(aggregator, "kafka broker")
        took = await sigterm_seconds(aggregator)
        assert took < STOP_WITHIN_S, f"still running {took:.1f} s after SIGTERM"
        await private_kafka.start()
        await aggregator.start()
        await produce(target, [(op, submission(second))])
        await wait_applied(target, 2)
    finally:
        aggregator.stop()
    assert await event_count(target.database_url, op) == len(first) + len(second)
