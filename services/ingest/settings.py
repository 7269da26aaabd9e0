"""Settings of the ingest service (HTTP limits, producer tuning), on top of `CommonSettings`."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field

from services.common.issuer_settings import IssuerSettings
from services.common.settings import MetricsPortSettings, service_env

_alias = service_env("INGEST")


class IngestSettings(IssuerSettings, MetricsPortSettings):
    """What the ingest service needs beyond the shared settings.

    Environment names: ``OPSLEDGER_INGEST_<FIELD>`` (e.g. ``OPSLEDGER_INGEST_PORT``).
    """

    uses_kafka: ClassVar[bool] = True
    service_name: ClassVar[str] = "INGEST"  # the metrics port: OPSLEDGER_INGEST_METRICS_PORT

    host: str = Field(
        validation_alias=_alias("HOST"),
        default="127.0.0.1",
        description="Interface the ingest HTTP server binds.",
    )
    port: int = Field(
        validation_alias=_alias("PORT"),
        default=8080,
        ge=1,
        le=65535,
        description="Port of the ingest HTTP server.",
    )
    workers: int = Field(
        validation_alias=_alias("WORKERS"),
        default=1,
        ge=1,
        le=64,
        description="Ingest server processes (uvicorn workers) on one port.",
    )
    max_body_bytes: int = Field(
        validation_alias=_alias("MAX_BODY_BYTES"),
        default=1024 * 1024,
        ge=1024,
        description="Largest request body accepted (413 beyond it).",
    )
    max_batch_events: int = Field(
        validation_alias=_alias("MAX_BATCH_EVENTS"),
        default=1000,
        ge=1,
        le=100_000,
        description="Most events accepted in one batch request.",
    )
    produce_timeout_s: float = Field(
        validation_alias=_alias("PRODUCE_TIMEOUT_S"),
        default=5.0,
        gt=0,
        le=120,
        description="Bound on waiting for the broker to acknowledge one produce (503 beyond it).",
    )
    max_future_s: float = Field(
        validation_alias=_alias("MAX_FUTURE_S"),
        default=300.0,
        ge=0,
        description="How far `occurred_at` may lie ahead of the server clock, in seconds.",
    )
    retry_after_s: int = Field(
        validation_alias=_alias("RETRY_AFTER_S"),
        default=2,
        ge=1,
        le=3600,
        description="`Retry-After` seconds sent with a 503 (broker unavailable).",
    )
    ready_cache_s: float = Field(
        validation_alias=_alias("READY_CACHE_S"),
        default=1.0,
        ge=0,
        le=60,
        description="How long a /readyz broker check result is reused.",
    )
    linger_ms: int = Field(
        validation_alias=_alias("LINGER_MS"),
        default=2,
        ge=0,
        le=1000,
        description="Producer linger: how long records wait to share a request to the broker.",
    )
    max_batch_size: int = Field(
        validation_alias=_alias("MAX_BATCH_SIZE"),
        default=1024 * 1024,
        ge=16 * 1024,
        description="Producer batch size in bytes per partition (>= max_body_bytes + overhead).",
    )
    max_record_bytes: int = Field(
        validation_alias=_alias("MAX_RECORD_BYTES"),
        default=900_000,
        ge=16 * 1024,
        description="Largest Kafka record written; a bigger submission is split into several"
        " (the broker refuses records over its message.max.bytes, 1 MiB by default).",
    )
    operations_startup_s: float = Field(
        validation_alias=_alias("OPERATIONS_STARTUP_S"),
        default=10.0,
        ge=0,
        le=300,
        description="How long start-up waits to read the operations topic to its end before"
        " serving (beyond it ingest serves anyway and fails open: see docs/operations.md).",
    )
    operations_check_s: float = Field(
        validation_alias=_alias("OPERATIONS_CHECK_S"),
        default=5.0,
        gt=0,
        le=300,
        description="How often the operations-topic follower checks the broker (and retries"
        " after a failure); /readyz shows its state.",
    )
    compression_type: str | None = Field(
        validation_alias=_alias("COMPRESSION_TYPE"),
        default=None,
        description="Producer compression (None, gzip, snappy, lz4, zstd).",
    )


@lru_cache(maxsize=1)
def ingest_settings() -> IngestSettings:
    """The process-wide ingest settings (read once from the environment)."""
    return IngestSettings()
