"""The log (`field-events`), its dead-letter topic and the compacted `operations` topic,
created at start-up when they are absent."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from services.common.kafka import client_kwargs
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)

_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36
# Under the production ACLs ingest may write the log but not create topics (docs/deployment.md):
# the topics are provisioned beforehand, so a refusal means "someone else's job", not a fault.
_NOT_ALLOWED = {29: "TOPIC_AUTHORIZATION_FAILED", 31: "CLUSTER_AUTHORIZATION_FAILED"}
# Kafka is the log of record: nothing on these topics may ever expire.
_TOPIC_CONFIGS = {"retention.ms": "-1", "retention.bytes": "-1"}


class TopicError(Exception):
    """The broker refused to create a topic, or did not answer within the bound."""


def wanted_topics(settings: CommonSettings) -> list[NewTopic]:
    """The log, its dead-letter topic and the compacted topic of operation records."""
    operations = NewTopic(
        settings.operations_topic,
        num_partitions=1,  # one partition: a reader learns every operation from one stream
        replication_factor=settings.topic_replication,
        topic_configs={"cleanup.policy": "compact", "retention.ms": "-1"},
    )
    return [
        *(
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=dict(_TOPIC_CONFIGS),
            )
            for name in (settings.topic, settings.dlq_topic)
        ),
        operations,
    ]


async def ensure_topics(settings: CommonSettings, timeout_s: float | None = None) -> None:
    """Create any of the topics that does not exist yet; an existing topic is left as is."""
    bound = timeout_s if timeout_s is not None else settings.kafka_timeout_s
    admin = AIOKafkaAdminClient(**client_kwargs(settings), request_timeout_ms=int(bound * 1000))
    try:
        async with asyncio.timeout(bound):
            await admin.start()
            response = await admin.create_topics(wanted_topics(settings))
    except (TimeoutError, KafkaError, OSError) as exc:
        raise TopicError(
            f"could not create topics on {settings.kafka_bootstrap_servers}: {exc!r}"
        ) from exc
    finally:
        with contextlib.suppress(TimeoutError, KafkaError, OSError):
            async with asyncio.timeout(bound):
                await admin.close()
    for name, code, *rest in response.topic_errors:
        if code == _NO_ERROR:
            log.info("created topic %s", name)
        elif code in _NOT_ALLOWED:
            log.warning(
                "not allowed to create topic %s (%s); assuming it is provisioned",
                name,
                _NOT_ALLOWED[code],
            )
        elif code != _TOPIC_ALREADY_EXISTS:
            message = rest[0] if rest else ""
            raise TopicError(f"broker refused to create topic {name}: error {code} {message}")
