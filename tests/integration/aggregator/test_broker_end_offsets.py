"""BrokerProbe.end_offsets against the real broker: the numbers a user would see in the log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.common.broker_probe import BrokerProbe
from services.common.settings import CommonSettings

pytestmark = pytest.mark.integration
PRODUCED = {0: 5, 1: 0, 2: 7}  # records per partition


@pytest.fixture
async def topic(kafka_bootstrap: str, unique_id: str) -> AsyncIterator[str]:
    """A topic only this test uses, holding PRODUCED records per partition; deleted afterwards."""
    name = f"end-offsets-{unique_id}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, num_partitions=len(PRODUCED), replication_factor=1)]
        )
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for partition, count in PRODUCED.items():
                for i in range(count):
                    await producer.send_and_wait(name, f"r{i}".encode(), partition=partition)
        finally:
            await producer.stop()
        yield name
    finally:
        await admin.delete_topics([name])
        await admin.close()


async def test_end_offsets_are_the_brokers_record_counts(kafka_bootstrap: str, topic: str) -> None:
    probe = BrokerProbe(
        CommonSettings(kafka_bootstrap_servers=kafka_bootstrap), timeout_s=5, cache_s=0, topic=topic
    )
    try:
        assert await probe.end_offsets(topic, [2, 0, 1]) == PRODUCED
        assert await probe.end_offsets(topic, [2]) == {2: 7}
        assert await probe.problem() is None  # the readiness check shares the client
        assert await probe.end_offsets(topic, [0, 1, 2]) == PRODUCED
    finally:
        await probe.close()


async def test_a_partition_the_topic_lacks_gets_no_answer_within_the_bound(
    kafka_bootstrap: str, topic: str
) -> None:
    probe = BrokerProbe(
        CommonSettings(kafka_bootstrap_servers=kafka_bootstrap), timeout_s=2, cache_s=0
    )
    try:
        assert await probe.end_offsets(topic, [len(PRODUCED)]) is None
        assert await probe.end_offsets(topic, [0]) == {0: 5}  # a fresh client after the failure
    finally:
        await probe.close()
