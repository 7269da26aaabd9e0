"""Readiness says when writes are refused even though the broker answers metadata.

On a three-broker cluster with two brokers gone, the survivor still answers metadata, but no
write can reach min.insync.replicas: every produce times out and ingest answers 503. /readyz
must not keep saying "ready" then (tests/reliability/test_cluster_two_down.py saw it did).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.ingest.producer import BrokerUnavailable, KafkaEventProducer
from services.ingest.settings import IngestSettings


class _Metadata:
    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}


class _Client:
    async def fetch_all_metadata(self) -> _Metadata:
        return _Metadata()


class _Delivery:
    def __init__(self, ok: bool) -> None:
        self.ok = ok

    def __await__(self) -> Any:
        async def wait() -> Any:
            if not self.ok:
                await asyncio.sleep(10)  # never acknowledged: the produce bound fires
            return type("Meta", (), {"partition": 0, "offset": 7})()

        return wait().__await__()


class _Producer:
    """Answers metadata always; acknowledges writes only when ``acks`` is true."""

    def __init__(self) -> None:
        self.client = _Client()
        self.acks = False

    async def send(self, topic: str, value: bytes, key: bytes) -> _Delivery:
        return _Delivery(self.acks)

    async def stop(self) -> None:
        return None


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> tuple[KafkaEventProducer, _Producer]:
    settings = IngestSettings(env="test", produce_timeout_s=0.2, ready_cache_s=0)
    real = KafkaEventProducer(settings)
    fake = _Producer()

    async def current() -> _Producer:
        return fake

    monkeypatch.setattr(real, "_current", current)
    return real, fake


async def test_not_ready_while_writes_are_refused_ready_after_one_succeeds(
    kafka: tuple[KafkaEventProducer, _Producer],
) -> None:
    producer, fake = kafka
    assert await producer.ready()
    with pytest.raises(BrokerUnavailable):
        await producer.send(b"op", b"{}")
    assert not await producer.ready()  # metadata answers, but the write was refused
    fake.acks = True
    assert (await producer.send(b"op", b"{}")).offset == 7
    assert await producer.ready()


async def test_a_refused_write_stops_counting_after_two_produce_bounds(
    kafka: tuple[KafkaEventProducer, _Producer],
) -> None:
    producer, _ = kafka
    with pytest.raises(BrokerUnavailable):
        await producer.send(b"op", b"{}")
    assert not await producer.ready()
    await asyncio.sleep(0.45)  # no traffic since: readiness is the metadata check again
    assert await producer.ready()
