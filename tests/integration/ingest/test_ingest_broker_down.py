"""Kafka down: 503 with Retry-After within the bound, never a hang; back up: 202 again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from services.common.wire import decode_submission
from services.devtools.kafka import PrivateKafka
from services.devtools.procs import free_port
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings

from .conftest import auth_for, make_event, read_records

pytestmark = pytest.mark.integration
BOUND_S = 2.0
SLACK_S = 1.5  # scheduling on a busy 2-core box


@pytest.fixture
async def dead_end_app(unique_id: str) -> AsyncIterator[FastAPI]:
    settings = IngestSettings(
        env="test",
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens there
        topic=f"it-ingest-dead-{unique_id}",
        produce_timeout_s=BOUND_S,
        kafka_timeout_s=BOUND_S,
    )
    app = create_app(settings)
    started = time.monotonic()
    async with app.router.lifespan_context(app):
        assert time.monotonic() - started < BOUND_S + SLACK_S  # start-up does not hang either
        yield app
    # Shutdown is bounded too, even with a producer that never connected.


async def test_unreachable_broker_is_503_within_the_bound(dead_end_app: FastAPI) -> None:
    settings: IngestSettings = dead_end_app.state.settings
    transport = httpx.ASGITransport(app=dead_end_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        op = "op-dead-end"
        for path, body in (
            ("/v1/events", make_event(op)),
            ("/v1/events/batch", {"events": [make_event(op), make_event(op)]}),
        ):
            started = time.monotonic()
            r = await client.post(path, json=body, headers=auth_for(settings, op))
            assert time.monotonic() - started < BOUND_S + SLACK_S
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["retry-after"] == str(settings.retry_after_s)
        started = time.monotonic()
        assert (await client.get("/readyz")).status_code == 503
        assert time.monotonic() - started < BOUND_S + SLACK_S
        assert (await client.get("/healthz")).status_code == 200


@pytest.fixture
def restart_settings(private_kafka: PrivateKafka, unique_id: str) -> Iterator[IngestSettings]:
    yield IngestSettings(
        env="test",
        kafka_bootstrap_servers=private_kafka.bootstrap,
        topic=f"it-ingest-restart-{unique_id}",
        topic_partitions=2,
        produce_timeout_s=BOUND_S,
        kafka_timeout_s=BOUND_S,
    )


async def test_broker_killed_then_restarted_503_then_202_without_restarting_ingest(
    private_kafka: PrivateKafka, restart_settings: IngestSettings
) -> None:
    app = create_app(restart_settings)
    op = "op-restart"
    auth = auth_for(restart_settings, op)
    accepted: list[str] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            first = make_event(op)
            assert (await client.post("/v1/events", json=first, headers=auth)).status_code == 202
            accepted.append(first["event_id"])

            await private_kafka.kill()
            for _ in range(3):
                started = time.monotonic()
                r = await client.post("/v1/events", json=make_event(op), headers=auth)
                assert time.monotonic() - started < BOUND_S + SLACK_S
                assert r.status_code == 503
                assert r.headers["retry-after"]
            assert (await client.get("/readyz")).status_code == 503

            await private_kafka.start()
            deadline = time.monotonic() + 60
            status = 0
            while status != 202 and time.monotonic() < deadline:
                event = make_event(op)
                r = await client.post("/v1/events", json=event, headers=auth)
                status = r.status_code
                assert status in (202, 503)
                if status == 202:
                    accepted.append(event["event_id"])
                else:
                    await asyncio.sleep(0.5)
            assert status == 202, "ingest did not accept again after the broker came back"
            await asyncio.sleep(restart_settings.ready_cache_s)
            assert (await client.get("/readyz")).status_code == 200
    records = await read_records(private_kafka.bootstrap, restart_settings.topic, len(accepted))
    on_topic = [e["event_id"] for r in records for e in decode_submission(r.value).events]
    # Every 202 is on the topic; a 503'd send may also have landed (the client retries it with
    # the same event_id, and the ledger counts an event_id once).
    assert set(accepted) <= set(on_topic)
