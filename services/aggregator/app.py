"""The single faust application of the aggregator, built from its settings.

Raw bytes in and out (never pickle), no tables, faust's web server off (our own health server
serves /healthz, /readyz and /metrics), and no leader topic.
"""

from __future__ import annotations

from typing import Any

import faust

from services.aggregator.settings import AggregatorSettings
from services.aggregator.stopping import LedgerApp
from services.common.kafka import ssl_context
from services.common.settings import CommonSettings


def broker_urls(bootstrap: str) -> list[str]:
    """faust's spelling of a Kafka bootstrap list."""
    return [f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()]


def broker_credentials(settings: CommonSettings) -> Any:
    """faust's credentials for the configured protocol (None for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: AggregatorSettings) -> faust.App:
    """The faust app; its id is the consumer group; stopping it is bounded (`stopping`)."""
    data_dir = settings.data_dir / settings.consumer_group
    data_dir.mkdir(parents=True, exist_ok=True)
    return LedgerApp(
        settings.consumer_group,
        broker=broker_urls(settings.kafka_bootstrap_servers),
        broker_credentials=broker_credentials(settings),
        datadir=str(data_dir),
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        # After a leader moves, aiokafka retries an offset lookup (ListOffsets) at the former
        # leader without refreshing its metadata (Kafka's Java client fixed the same stall in
        # KAFKA-9535); a new member given such a partition then waits until the next periodic
        # refresh (5 min by default) before consuming it. A short max age bounds the stall.
        consumer_metadata_max_age_ms=int(settings.metadata_max_age_s * 1000),
        producer_acks=-1,
        # Offsets committed to Kafka are only a starting hint: the applied position is the one
        # kept in PostgreSQL with the rows, and records at or below it are skipped.
        broker_commit_interval=1.0,
        # On rebalance, wait for the batch in flight to commit and be acked before giving the
        # partition away.
        stream_wait_empty=True,
        # The stream buffer stays 4,096 records, but also holds at most half of
        # inflight_max_bytes (`take.ByteBoundedQueue`); the other half is the batch in hand.
        buffer_max_bytes=settings.inflight_max_bytes // 2,
    )
