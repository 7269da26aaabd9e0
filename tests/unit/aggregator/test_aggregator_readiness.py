"""Readiness: the agent's own state and the broker check, each enough to answer 503."""

from __future__ import annotations

import httpx
from aiohttp.test_utils import TestServer

from services.aggregator.health import HealthState, health_app, readiness

LOST = "kafka broker 127.0.0.1:9 unreachable: KafkaConnectionError: Unable to bootstrap"


class FakeBroker:
    """A broker check that answers what the test says, and counts the calls."""

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        self.calls = 0

    async def problem(self) -> str | None:
        self.calls += 1
        return self.reason


def started() -> HealthState:
    state = HealthState(stall_after_s=30)
    state.started = True
    return state


async def test_a_lost_broker_makes_a_healthy_agent_not_ready_and_its_return_ready() -> None:
    broker = FakeBroker(LOST)
    assert await readiness(started(), broker) == [LOST]
    broker.reason = None
    assert await readiness(started(), broker) == []
    assert broker.calls == 2


async def test_broker_reason_comes_after_the_agents_own() -> None:
    state = HealthState(stall_after_s=30)  # consumer not started
    assert await readiness(state, FakeBroker(LOST)) == ["consumer not started", LOST]
    assert await readiness(state, None) == ["consumer not started"]


async def test_readyz_answers_503_naming_the_broker_then_200() -> None:
    broker = FakeBroker(LOST)
    server = TestServer(health_app(started(), broker))
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=str(server.make_url(""))) as client:
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["problems"] == [LOST]
            broker.reason = None
            r = await client.get("/readyz")
            assert (r.status_code, r.json()["status"]) == (200, "ready")
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await server.close()
