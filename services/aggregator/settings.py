"""Settings of the aggregator: consumer group, batching, retry bounds, health server, faust data."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator

from services.common.settings import CommonSettings, service_env

_alias = service_env("AGGREGATOR")


class AggregatorSettings(CommonSettings):
    """The aggregator's own settings; environment names ``OPSLEDGER_AGGREGATOR_*``."""

    uses_kafka: ClassVar[bool] = True
    uses_database: ClassVar[bool] = True
    batch_max_events: int = Field(
        1000,
        ge=1,
        le=100_000,
        validation_alias=_alias("BATCH_MAX_EVENTS"),
        description="Most events per batch transaction (and records taken off the stream at once).",
    )
    batch_max_ms: int = Field(
        # A take waiting this long on every turn (unless max records arrive first) is a floor
        # under accept-to-visible latency and only adds idle time: under load, group commit
        # already batches what is decoded while a transaction is in flight. 0 hands records over
        # at once (docs/performance.md, "Latency").
        0,
        ge=0,
        le=60_000,
        validation_alias=_alias("BATCH_MAX_MS"),
        description="Wait for a take to fill before it is decoded and written (0: hand records"
        " over as they arrive; group commit still batches under load).",
    )
    inflight_max_bytes: int = Field(
        128 << 20,
        ge=4 << 20,
        le=16 << 30,
        validation_alias=_alias("INFLIGHT_MAX_BYTES"),
        description="Bound on the record bytes held in flight: half for the batch being taken and"
        " written, half for faust's stream buffer (sized for maximum-size records).",
    )
    host: str = Field(
        "127.0.0.1",
        validation_alias=_alias("HOST"),
        description="Interface of the health server (/healthz, /readyz, /metrics).",
    )
    port: int = Field(
        8082,
        ge=0,
        le=65535,
        validation_alias=_alias("PORT"),
        description="Port of the health server.",
    )
    retry_initial_s: float = Field(
        0.1,
        gt=0,
        le=60,
        validation_alias=_alias("RETRY_INITIAL_S"),
        description="First wait before retrying a held partition's failed transaction.",
    )
    retry_max_s: float = Field(
        5.0,
        gt=0,
        le=600,
        validation_alias=_alias("RETRY_MAX_S"),
        description="Cap of the exponential backoff between retries of a held partition (only it"
        " waits; the others keep applying).",
    )
    lock_timeout_ms: int = Field(
        2000,
        ge=100,
        le=600_000,
        validation_alias=_alias("LOCK_TIMEOUT_MS"),
        description="PostgreSQL lock_timeout of the aggregator's sessions: a batch waiting this"
        " long for a row lock (another session holding an operation's rows) fails as transient"
        " and only that batch's partition is held and retried; the others keep applying.",
    )
    statement_timeout_ms: int = Field(
        20_000,
        ge=1000,
        le=3_600_000,
        validation_alias=_alias("STATEMENT_TIMEOUT_MS"),
        description="PostgreSQL statement_timeout of the aggregator's sessions: a statement"
        " running longer fails as transient (its partition is held and retried).",
    )
    stall_after_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        validation_alias=_alias("STALL_AFTER_S"),
        description="/readyz fails when there is lag and no batch committed for this long.",
    )
    ready_timeout_s: float = Field(
        1.5,
        gt=0,
        le=60,
        validation_alias=_alias("READY_TIMEOUT_S"),
        description="/readyz fails when the Kafka broker does not answer metadata within this.",
    )
    ready_cache_s: float = Field(
        1.0,
        ge=0,
        le=60,
        validation_alias=_alias("READY_CACHE_S"),
        description="How long a /readyz broker check result is reused.",
    )
    session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=300,
        validation_alias=_alias("SESSION_TIMEOUT_S"),
        description="Kafka group session timeout: how soon a crashed instance's partitions move.",
    )
    metadata_max_age_s: float = Field(
        5.0,
        ge=1,
        le=300,
        validation_alias=_alias("METADATA_MAX_AGE_S"),
        description="Longest the consumer trusts its view of partition leaders. aiokafka does "
        "not refresh it when an offset lookup hits a former leader, so this bounds that stall.",
    )
    pool_max_size: int = Field(
        4,
        ge=1,
        le=100,
        validation_alias=_alias("POOL_MAX_SIZE"),
        description="Upper bound on PostgreSQL connections.",
    )
    rebuild_memory_mb: int = Field(
        # A rebuild worker keeps the fold state of every event it wrote (services.audit.bulk),
        # ~BYTES_PER_EVENT each: 2 GB holds about 2.7 million events; a longer log is replayed
        # with lookups (slower, memory flat).
        2048,
        ge=0,
        le=1 << 20,
        validation_alias=_alias("REBUILD_MEMORY_MB", "OPSLEDGER_REBUILD_MEMORY_MB"),
        description="`opsledger rebuild`: bound on what its workers together keep in memory"
        " during the bulk first pass (the fold state of each event written). A log with more"
        " records than that holds, or a worker reaching its share, is replayed with lookups"
        " against the shadow instead, whose memory does not grow with the log (slower). 0: no"
        " bound.",
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "opsledger-aggregator",
        validation_alias=_alias("DATA_DIR"),
        description="Faust's data directory (no table state is kept; faust requires one).",
    )

    @model_validator(mode="after")
    def _backoff_bounds(self) -> AggregatorSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be >= retry_initial_s")
        return self


@lru_cache(maxsize=1)
def aggregator_settings() -> AggregatorSettings:
    """The process-wide aggregator settings (read once from the environment)."""
    return AggregatorSettings()
