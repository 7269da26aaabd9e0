"""Ingest against the real broker: an app per test on its own topics, and a way to read them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI

from schemas.examples import fresh_event
from services import stack as local_stack
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from services.stack.devissuer.tokens import dev_token


async def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Remove a test's private topics from the shared broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(10):
            await admin.start()
            await admin.delete_topics(topics)
    with contextlib.suppress(Exception):
        await admin.close()


async def read_records(
    bootstrap: str, topic: str, count: int, timeout_s: float = 15.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` from the beginning, once ``count`` have arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,  # no group: every partition is assigned to us
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(timeout_s):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
        # Anything beyond `count` would be a duplicate or a stray write: give it a moment.
        extra = await consumer.getmany(timeout_ms=300)
        records.extend(r for part in extra.values() for r in part)
        return records
    finally:
        await consumer.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The real broker. Ingest needs Kafka and nothing else (DESIGN.md), so unlike the shared
    fixture this one does not wait on PostgreSQL's migrations."""
    problem = ""
    try:
        info = local_stack.ensure_up(migrate=False)
    except local_stack.StackError as exc:
        problem = str(exc)
    if problem:
        pytest.fail(f"the local Kafka broker is not ready: {problem}", pytrace=False)
    yield info.kafka_bootstrap
    if info.started:
        local_stack.down(only=info.started)


@pytest.fixture
def op() -> str:
    return f"op-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic_settings(kafka_bootstrap: str, unique_id: str) -> IngestSettings:
    return IngestSettings(
        env="test",
        kafka_bootstrap_servers=kafka_bootstrap,
        topic=f"it-ingest-{unique_id}",
        dlq_topic=f"it-ingest-{unique_id}.dlq",
        topic_partitions=3,
        produce_timeout_s=5,
    )


@pytest.fixture
async def live_app(topic_settings: IngestSettings) -> AsyncIterator[FastAPI]:
    app = create_app(topic_settings)
    async with app.router.lifespan_context(app):
        yield app
    await delete_topics(
        topic_settings.kafka_bootstrap_servers, [topic_settings.topic, topic_settings.dlq_topic]
    )


@pytest.fixture
async def client(live_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=live_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
        yield c


def auth_for(settings: IngestSettings, *ops: str, subject: str = "pc-4101") -> dict[str, str]:
    """Authorization header of a field token for ``ops``."""
    token = dev_token(role="field", operations=list(ops), subject=subject)
    return {"Authorization": f"Bearer {token}"}


# One valid event, fresh id, occurring now: shared with the product's examples.
make_event = fresh_event
