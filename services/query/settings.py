"""Settings of the query service (read side): where it listens, its pool, the live stream."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from services.common.issuer_settings import IssuerSettings
from services.common.settings import MetricsPortSettings, service_env

_alias = service_env("QUERY")


class QuerySettings(IssuerSettings, MetricsPortSettings):
    """The read side: HTTP address, pool bounds, freshness source, stream limits.

    Environment names: ``OPSLEDGER_QUERY_<FIELD>`` (e.g. ``OPSLEDGER_QUERY_PORT``); the consumer
    group is ``OPSLEDGER_CONSUMER_GROUP``, shared with the aggregator.
    """

    uses_database: ClassVar[bool] = True
    service_name: ClassVar[str] = "QUERY"  # the metrics port: OPSLEDGER_QUERY_METRICS_PORT

    host: str = Field(
        "127.0.0.1",
        validation_alias=_alias("HOST"),
        description="Interface the query HTTP server binds.",
    )
    port: int = Field(
        8081,
        validation_alias=_alias("PORT"),
        ge=1,
        le=65535,
        description="Port the query HTTP server binds.",
    )
    dashboard_client_id: str | None = Field(
        None,
        validation_alias=_alias("DASHBOARD_CLIENT_ID"),
        description="The identity provider's public client (authorization code + PKCE) the "
        "dashboard signs in with; published at /v1/auth/config. Unset: the dashboard asks for a "
        "pasted token (the development issuer cannot sign people in).",
    )
    dashboard_scope: str = Field(
        "openid",
        validation_alias=_alias("DASHBOARD_SCOPE"),
        description="Scopes the dashboard requests (Entra ID: add `api://<app>/.default` "
        "for tokens issued to opsledger; `offline_access` for a refresh token).",
    )
    workers: int = Field(
        1,
        validation_alias=_alias("WORKERS"),
        ge=1,
        le=64,
        description="Query server processes (uvicorn workers) on one port; each has one listener.",
    )
    pool_min_size: int = Field(
        1,
        validation_alias=_alias("POOL_MIN_SIZE"),
        ge=0,
        le=100,
        description="Connections kept open in the pool.",
    )
    pool_max_size: int = Field(
        10,
        validation_alias=_alias("POOL_MAX_SIZE"),
        ge=1,
        le=200,
        description="Upper bound on pooled connections.",
    )
    statement_timeout_ms: int = Field(
        10_000,
        validation_alias=_alias("STATEMENT_TIMEOUT_MS"),
        ge=100,
        le=600_000,
        description="PostgreSQL statement_timeout for every read.",
    )
    ready_timeout_s: float = Field(
        2.0,
        validation_alias=_alias("READY_TIMEOUT_S"),
        gt=0,
        le=30,
        description="Upper bound on the database check behind /readyz.",
    )
    stream_queue_size: int = Field(
        8,
        validation_alias=_alias("STREAM_QUEUE_SIZE"),
        ge=1,
        le=1000,
        description="Pending change signals kept per live-stream client.",
    )
    stream_max_clients: int = Field(
        1000,
        validation_alias=_alias("STREAM_MAX_CLIENTS"),
        ge=1,
        le=100_000,
        description="Live-stream clients per process; more get 503.",
    )
    stream_heartbeat_s: float = Field(
        15.0,
        validation_alias=_alias("STREAM_HEARTBEAT_S"),
        gt=0,
        le=300,
        description="Seconds between SSE heartbeat comments.",
    )
    stream_min_interval_s: float = Field(
        # 0.1 s paced every message of an operation changing more than 10 times a second, up to
        # 100 ms behind its commit (the dashboard's stream at 20 changes/s: p99 ~130-250 ms).
        # 0.02 s (50 messages/s per client at most) leaves changes 50 ms apart unpaced; the
        # re-read behind each message is shared by the clients of an operation (`cache`).
        0.02,
        validation_alias=_alias("STREAM_MIN_INTERVAL_S"),
        ge=0,
        le=60,
        description="Least time between two messages to one stream client.",
    )
    stream_retry_ms: int = Field(
        2000,
        validation_alias=_alias("STREAM_RETRY_MS"),
        ge=100,
        le=600_000,
        description="Reconnect delay the SSE `retry:` field suggests.",
    )
    cache_totals: bool = Field(
        True,
        validation_alias=_alias("CACHE_TOTALS"),
        description="Keep read answers in memory until the aggregator NOTIFYs a change.",
    )
    cache_max_age_s: float = Field(
        30.0,
        validation_alias=_alias("CACHE_MAX_AGE_S"),
        gt=0,
        le=3600,
        description="Longest a cached answer is served (bounds changes made outside NOTIFY).",
    )
    freshness_ttl_s: float = Field(
        1.0,
        validation_alias=_alias("FRESHNESS_TTL_S"),
        ge=0,
        le=60,
        description="How long a read of the consumer offsets is reused.",
    )
    operations_database_url: SecretStr | None = Field(
        None,
        validation_alias=_alias("OPERATIONS_DATABASE_URL"),
        description="Database URL, as the registrar role (`opsledger_registrar`), used only by "
        "POST /v1/operations and /v1/operations/{op}/close; unset, those answer 503 (the query "
        "role reads only). Closing also signs with the ledger's key (`OPSLEDGER_TLOG_*`).",
    )
