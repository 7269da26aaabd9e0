"""Broker SIGKILLed: /readyz says so within seconds, naming it; broker back: ready and applying."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from schemas.examples import example_events
from services.devtools.kafka import PrivateKafka

from .harness import AggregatorProcess, Target, produce, submission, wait_applied

pytestmark = pytest.mark.integration
NOT_READY_WITHIN_S = 8.0  # cache 1 s + metadata bound 1.5 s, and slack for a busy 2-core box


def records(op: str, n: int) -> list[tuple[str, bytes]]:
    base = [e for e in example_events() if e["type"] != "event_voided"]
    events = [
        base[i % len(base)] | {"event_id": str(uuid.uuid4()), "operation_id": op} for i in range(n)
    ]
    return [(op, submission([e])) for e in events]


async def wait_readyz(
    aggregator: AggregatorProcess, status: int, timeout_s: float
) -> dict[str, Any]:
    """Poll /readyz until it answers ``status``; return its body."""
    deadline = time.monotonic() + timeout_s
    seen: tuple[int, dict[str, Any]] = (0, {})
    while time.monotonic() < deadline:
        seen = await aggregator.readyz()
        if seen[0] == status:
            return seen[1]
        await asyncio.sleep(0.2)
    raise AssertionError(f"/readyz not {status} after {timeout_s} s: {seen}\n{aggregator.tail()}")


async def test_broker_killed_readyz_503_naming_it_then_200_and_applying_after_restart(
    target: Target, private_kafka: PrivateKafka, tmp_path: Path
) -> None:
    target.kafka = private_kafka.bootstrap
    op = f"broker-down-{target.topic}"
    await produce(target, records(op, 5))
    aggregator = AggregatorProcess(target, tmp_path)
    try:
        await aggregator.start()
        await wait_applied(target, 5)

        await private_kafka.kill()
        killed = time.monotonic()
        body = await wait_readyz(aggregator, 503, NOT_READY_WITHIN_S)
        assert time.monotonic() - killed < NOT_READY_WITHIN_S
        assert any(f"kafka broker {target.kafka}" in p for p in body["problems"]), body
        assert (await aggregator.readyz())[0] == 503  # it stays so while the broker is away

        await private_kafka.start()
        await wait_readyz(aggregator, 200, 60)
        await produce(target, records(op, 5))
        await wait_applied(target, 10)
    finally:
        aggregator.stop()
