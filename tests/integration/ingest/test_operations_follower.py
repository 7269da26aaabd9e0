"""Ingest's follower of the operations topic on a real broker: it reads what was published
before it started, follows what comes after, and fails open (bounded) when it cannot read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.operations import new_record, publish
from services.devtools.kafka import PrivateKafka
from services.devtools.procs import free_port
from services.ingest.settings import IngestSettings
from services.ingest.statuses import OperationsFollower

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 23, 6, tzinfo=UTC)


def _settings(bootstrap: str, unique_id: str) -> IngestSettings:
    return IngestSettings(
        env="test", kafka_bootstrap_servers=bootstrap, topic=f"it-follow-{unique_id}",
        operations_topic=f"it-follow-{unique_id}.operations", operations_check_s=0.5,
        operations_startup_s=20, kafka_timeout_s=3,
    )  # fmt: skip


async def test_it_reads_the_topic_to_its_end_then_follows(
    kafka_bootstrap: str, unique_id: str
) -> None:
    settings = _settings(kafka_bootstrap, unique_id)
    before = new_record("op-before", "Before", [], T0, T0 + timedelta(days=1), by="adm")
    await publish(settings, before.close("adm", T0 + timedelta(days=2)))
    follower = OperationsFollower(settings)
    await follower.start()
    try:
        assert follower.caught_up and follower.closed("op-before") is not None
        assert follower.health()["state"] == "following"
        after = new_record("op-after", "After", [], T0, T0 + timedelta(days=1), by="adm")
        await publish(settings, after)
        assert follower.closed("op-after") is None
        await publish(settings, after.close("adm", T0 + timedelta(days=3)))
        deadline = time.monotonic() + 15
        while follower.closed("op-after") is None:
            assert time.monotonic() < deadline, follower.health()
            await asyncio.sleep(0.1)
    finally:
        await follower.stop()


async def test_an_unreachable_broker_fails_open_within_the_bound(unique_id: str) -> None:
    settings = _settings(f"127.0.0.1:{free_port()}", unique_id)
    follower = OperationsFollower(settings)
    started = time.monotonic()
    await follower.start()
    try:
        assert time.monotonic() - started < settings.kafka_timeout_s + 3
        health = follower.health()
        assert (health["state"], health["caught_up"]) == ("unavailable", False), health
        assert health["error"]
        assert follower.closed("any-operation") is None  # nothing refused: fail open
    finally:
        stopping = time.monotonic()
        await follower.stop()
        assert time.monotonic() - stopping < 2 * settings.kafka_timeout_s + 1


async def test_it_outlives_a_broker_outage_and_learns_the_closes_made_after_it(
    private_kafka: PrivateKafka, unique_id: str
) -> None:
    """The broker crashes while the follower follows: /readyz says so (never a stale
    "following"), and once the broker is back a close published then is learnt; the client of
    the failed attempt is closed, not left with its sockets open."""
    settings = _settings(private_kafka.bootstrap, unique_id)
    record = new_record("op-outage", "Outage", [], T0, T0 + timedelta(days=1), by="adm")
    await publish(settings, record)
    syncing_before = _metadata_tasks()
    follower = OperationsFollower(settings)
    await follower.start()
    try:
        assert follower.caught_up and follower.health()["state"] == "following"
        await private_kafka.kill()
        await _until(lambda: follower.health()["state"] == "unavailable", 20, follower)
        await private_kafka.start()
        await publish(settings, record.close("adm", T0 + timedelta(days=2)))
        await _until(lambda: follower.closed("op-outage") is not None, 30, follower)
        assert follower.health()["state"] == "following"
    finally:
        await follower.stop()
    # Every client made since is closed: no metadata task of theirs is left running.
    assert _metadata_tasks() - syncing_before == set()


def _metadata_tasks() -> set[asyncio.Task[Any]]:
    """The metadata tasks of the aiokafka clients open now (one per client, until it closes)."""
    return {t for t in asyncio.all_tasks() if "_md_synchronizer" in repr(t.get_coro())}


async def _until(
    condition: Callable[[], bool], bound_s: float, follower: OperationsFollower
) -> None:
    deadline = time.monotonic() + bound_s
    while not condition():
        assert time.monotonic() < deadline, follower.health()
        await asyncio.sleep(0.1)
