"""Settings shared by every service; each service extends `CommonSettings` with its own.

Every field is read from the environment with the prefix ``OPSLEDGER_`` (e.g.
``OPSLEDGER_TOPIC``).  The two connection strings also answer to the conventional names
``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL``, which is what ``opsledger stack env`` prints.
Every setting is documented in docs/configuration.md.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The local stack's addresses (see services/stack): defaults, so that after `opsledger stack up`
# every command works with no environment at all.
LOCAL_KAFKA = "127.0.0.1:39092"
LOCAL_DATABASE_URL = "postgresql://opsledger@127.0.0.1:35432/opsledger"


def service_env(service: str) -> Callable[..., AliasChoices]:
    """Environment names of one service's own settings: ``OPSLEDGER_<SERVICE>_<NAME>``.

    Distinct per service, so that one environment can configure every service at once.
    """

    def alias(name: str, *more: str) -> AliasChoices:
        return AliasChoices(f"OPSLEDGER_{service}_{name}", *more)

    return alias


class CommonSettings(BaseSettings):
    """What every opsledger process needs: where Kafka and PostgreSQL are, and how to reach them."""

    # populate_by_name: services' own fields are read from OPSLEDGER_<SERVICE>_* (aliases) and
    # may still be passed by field name (tests, benchmarks).
    model_config = SettingsConfigDict(
        env_prefix="OPSLEDGER_", extra="ignore", frozen=True, populate_by_name=True
    )
    # The connections this process opens, which production refuses to open unencrypted
    # (each service's settings opt in to what it uses).
    uses_kafka: ClassVar[bool] = False
    uses_database: ClassVar[bool] = False

    env: Literal["development", "test", "production"] = Field(
        "development",
        description="Deployment mode; `production` refuses the development issuer and "
        "unencrypted connections.",
    )
    kafka_bootstrap_servers: str = Field(
        LOCAL_KAFKA,
        validation_alias=AliasChoices(
            "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        ),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    database_url: str = Field(
        LOCAL_DATABASE_URL,
        validation_alias=AliasChoices("OPSLEDGER_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL DSN (postgresql://user:pass@host:port/db).",
    )
    topic: str = Field("field-events", description="The log of record.")
    dlq_topic: str = Field("field-events.dlq", description="Where poison messages go.")
    operations_topic: str = Field(
        "operations",
        description="Compacted topic of operation records (key = operation_id): title, window, "
        "status; the latest record of each operation wins.",
    )
    # Common: the aggregator consumes as this group and records its offsets under it; query
    # (freshness) and rebuild (the live offsets to compare with) read them back by it.
    consumer_group: str = Field(
        "opsledger-aggregator",
        validation_alias=AliasChoices("OPSLEDGER_CONSUMER_GROUP", "OPSLEDGER_AGGREGATOR_GROUP"),
        description="The aggregator's Kafka consumer group (and faust app id); its offsets, kept "
        "in PostgreSQL, state every read's freshness.",
    )
    topic_partitions: int = Field(12, ge=1, le=1000, description="Partitions of a new topic.")
    topic_replication: int = Field(1, ge=1, le=7, description="Replication of a new topic.")
    kafka_timeout_s: float = Field(
        5.0, gt=0, le=120, description="Upper bound on any single wait for the broker."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers (SASL_SSL in production)."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user of this service.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: str | None = Field(
        None, description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL)."
    )
    insecure_kafka_plaintext: bool = Field(
        False,
        description="INSECURE: let production talk to Kafka without TLS (PLAINTEXT or "
        "SASL_PLAINTEXT).",
    )
    insecure_database_without_tls: bool = Field(
        False,
        description="INSECURE: let production connect to PostgreSQL without "
        "sslmode=require/verify-ca/verify-full in the DSN.",
    )
    log_level: str = Field("INFO", description="Python log level name.")
    log_json: bool = Field(False, description="Log as JSON lines instead of console text.")

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> CommonSettings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "OPSLEDGER_KAFKA_SECURITY_PROTOCOL=SASL_* needs OPSLEDGER_KAFKA_SASL_MECHANISM, "
                "OPSLEDGER_KAFKA_SASL_USERNAME and OPSLEDGER_KAFKA_SASL_PASSWORD"
            )
        if self.env == "production":
            _refuse_insecure_transport(self)
        return self


class MetricsPortSettings(CommonSettings):
    """A service's own /metrics port, off its public port: for the services that serve HTTP.

    A service mixes this in and names itself with ``service_name``; its variables are then
    ``OPSLEDGER_<SERVICE>_METRICS_PORT`` / ``_METRICS_HOST``, like its other own settings.
    """

    service_name: ClassVar[str] = ""

    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /metrics on this port only, never on the public port; unset: "
        "/metrics on the public port (development).",
    )
    metrics_host: str = Field(
        "0.0.0.0",  # noqa: S104 - the scraper runs elsewhere; the port is not in the Service
        description="Interface of the metrics port (when one is set).",
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # The fields are declared once, above; each service reads them under its own names.
        # Pydantic builds a class's fields before this hook runs, so set the aliases, then
        # rebuild the validator that reads them.
        super().__pydantic_init_subclass__(**kwargs)
        if not cls.service_name:
            raise TypeError(f"{cls.__name__} mixes in MetricsPortSettings without a service_name")
        alias = service_env(cls.service_name)
        for name in ("metrics_port", "metrics_host"):
            info = copy.copy(cls.__pydantic_fields__[name])
            info.validation_alias = alias(name.upper())
            cls.__pydantic_fields__[name] = info
        cls.model_rebuild(force=True)


class DatabaseSettings(CommonSettings):
    """Settings of a one-shot database command (migrate): PostgreSQL only."""

    uses_database: ClassVar[bool] = True


_TLS_SSLMODES = ("require", "verify-ca", "verify-full")


def _refuse_insecure_transport(s: CommonSettings) -> None:
    """Production talks TLS to Kafka and PostgreSQL unless an INSECURE setting says otherwise."""
    if (
        s.uses_kafka
        and s.kafka_security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT")
        and not s.insecure_kafka_plaintext
    ):
        raise ValueError(
            f"OPSLEDGER_KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} sends the ledger "
            "unencrypted; use SSL or SASL_SSL in production (or set "
            "OPSLEDGER_INSECURE_KAFKA_PLAINTEXT=true)"
        )
    query = parse_qs(urlsplit(s.database_url).query)
    sslmode = (query.get("sslmode") or query.get("ssl") or [""])[-1]
    if s.uses_database and sslmode not in _TLS_SSLMODES and not s.insecure_database_without_tls:
        raise ValueError(
            "OPSLEDGER_DATABASE_URL must require TLS in production "
            f"(sslmode={'|'.join(_TLS_SSLMODES)}; or set "
            "OPSLEDGER_INSECURE_DATABASE_WITHOUT_TLS=true)"
        )
