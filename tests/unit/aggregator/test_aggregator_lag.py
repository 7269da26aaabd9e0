"""Lag comes from the broker's end offsets: a consumer whose fetches froze still shows a stall."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer
from faust.types import TP

from services.aggregator.agent import Aggregator
from services.aggregator.app import create_app
from services.aggregator.health import health_app
from services.aggregator.settings import AggregatorSettings

TOPIC = "t-lag-unit"
STALL_S = 0.3


class FakeBroker:
    """A broker whose end offsets the test sets; None stands for a broker that does not answer."""

    def __init__(self, ends: dict[int, int] | None) -> None:
        self.ends = ends
        self.asked: list[list[int]] = []

    async def problem(self) -> str | None:
        return None

    async def end_offsets(self, topic: str, partitions: list[int]) -> dict[int, int] | None:
        assert topic == TOPIC
        self.asked.append(partitions)
        return None if self.ends is None else dict(self.ends)

    async def close(self) -> None:
        return None


@pytest.fixture
def aggregator(tmp_path: Path) -> Aggregator:
    """An aggregator on partition 0 whose consumer fetched up to offset 9 and then froze."""
    settings = AggregatorSettings(data_dir=tmp_path, topic=TOPIC, stall_after_s=STALL_S)
    agg = Aggregator(create_app(settings), settings)
    agg.health.started = True
    agg.applied = {0: 9}  # offsets 0..9 are in PostgreSQL
    agg._writer = object()  # type: ignore[assignment]  # positions are loaded
    agg._assigned = lambda: [TP(TOPIC, 0)]  # type: ignore[method-assign]
    agg._highwater = lambda tp: 10  # type: ignore[method-assign]  # frozen: lag 0 by itself
    agg.lag_probe_s = 0  # ask the broker on every tick
    return agg


async def readyz(agg: Aggregator) -> httpx.Response:
    server = TestServer(health_app(agg.health, agg.broker))
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
            return await client.get("/readyz")
    finally:
        await server.close()


async def test_a_frozen_consumer_with_a_growing_log_is_not_ready_after_stall_after_s(
    aggregator: Aggregator,
) -> None:
    broker = FakeBroker({0: 10})
    aggregator.broker = broker
    await aggregator._refresh_lag()
    assert (await readyz(aggregator)).status_code == 200  # caught up: end 10, last offset 9
    broker.ends = {0: 25}
    await aggregator._refresh_lag()
    r = await readyz(aggregator)
    assert (r.status_code, r.json()["lag"]) == (200, {"0": 15})  # new lag is not yet a stall
    await asyncio.sleep(STALL_S + 0.1)
    broker.ends = {0: 40}
    await aggregator._refresh_lag()
    r = await readyz(aggregator)
    assert r.status_code == 503
    assert r.json()["lag"] == {"0": 30}
    (problem,) = r.json()["problems"]
    assert problem.startswith("no progress for ") and problem.endswith(" s with lag 30")
    assert broker.asked == [[0], [0], [0]]


async def test_without_a_broker_answer_lag_falls_back_to_the_consumer_highwater(
    aggregator: Aggregator,
) -> None:
    aggregator.broker = FakeBroker(None)
    aggregator._highwater = lambda tp: 14  # type: ignore[method-assign]
    await aggregator._refresh_lag()
    assert aggregator.health.lag == {0: 4}


async def test_the_broker_is_asked_at_most_every_lag_probe_s(aggregator: Aggregator) -> None:
    broker = FakeBroker({0: 12})
    aggregator.broker = broker
    aggregator.lag_probe_s = 60
    for _ in range(3):
        await aggregator._refresh_lag()
    assert broker.asked == [[0]]
    assert aggregator.health.lag == {0: 2}  # the last answer is used between probes


async def test_a_partition_moved_away_by_a_rebalance_no_longer_counts_as_a_stall(
    aggregator: Aggregator,
) -> None:
    aggregator.broker = FakeBroker({0: 40, 1: 40})
    aggregator._assigned = lambda: [TP(TOPIC, 0), TP(TOPIC, 1)]  # type: ignore[method-assign]
    aggregator.applied = {0: 9, 1: 9}
    await aggregator._refresh_lag()
    assert (await readyz(aggregator)).json()["lag"] == {"0": 30, "1": 30}
    # A rebalance gives both partitions to another member while they lag; nothing comes here.
    aggregator._assigned = lambda: []  # type: ignore[method-assign]
    await asyncio.sleep(STALL_S + 0.1)
    await aggregator._refresh_lag()
    r = await readyz(aggregator)
    assert (r.status_code, r.json()["lag"]) == (200, {})
