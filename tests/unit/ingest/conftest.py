"""Ingest unit fixtures: the real app with a fake producer through the app factory's seam."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from schemas.examples import fresh_event
from services.ingest.app import create_app
from services.ingest.producer import Acked, BrokerUnavailable
from services.ingest.settings import IngestSettings
from services.stack.devissuer.tokens import dev_token, dev_verifier


@dataclass
class FakeProducer:
    """Records what would go to Kafka; can be told to fail (all, or for some keys)."""

    sent: list[tuple[bytes, bytes]] = field(default_factory=list)
    down: bool = False
    down_keys: set[bytes] = field(default_factory=set)
    started: bool = False
    stopped: bool = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, key: bytes, value: bytes) -> Acked:
        if self.down or key in self.down_keys:
            raise BrokerUnavailable("the broker did not acknowledge in time")
        self.sent.append((key, value))
        return Acked(partition=len(key) % 12, offset=len(self.sent) - 1)

    async def ready(self) -> bool:
        return not self.down

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(value) for _, value in self.sent]


@pytest.fixture
def settings() -> IngestSettings:
    return IngestSettings(env="test", max_body_bytes=64 * 1024, max_batch_events=50)


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def app(settings: IngestSettings, producer: FakeProducer) -> FastAPI:
    app = create_app(settings, producer)
    app.state.ingest.verifier = dev_verifier()  # development tokens, verified with no network
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
            yield c


@pytest.fixture
def op() -> str:
    return f"op-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def auth(settings: IngestSettings, op: str) -> dict[str, str]:
    token = dev_token(role="field", operations=[op], subject="pc-4101")
    return {"Authorization": f"Bearer {token}"}


# One valid event, fresh id, occurring now: shared with the product's examples.
make_event = fresh_event
