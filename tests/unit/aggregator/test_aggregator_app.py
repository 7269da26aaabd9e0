"""The faust app's broker credentials follow the shared Kafka security settings."""

from __future__ import annotations

from pathlib import Path

import faust
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from services.aggregator.app import broker_credentials, broker_urls
from services.aggregator.settings import AggregatorSettings


def test_plaintext_needs_no_credentials() -> None:
    assert broker_credentials(AggregatorSettings()) is None


def test_sasl_scram_over_tls_reaches_aiokafka_intact() -> None:
    settings = AggregatorSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="opsledger-aggregator",
        kafka_sasl_password="s3cret",
    )
    auth = credentials_to_aiokafka_auth(broker_credentials(settings))
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == (
        "opsledger-aggregator",
        "s3cret",
    )
    assert auth["ssl_context"] is not None


def test_tls_alone_gives_ssl_credentials() -> None:
    creds = broker_credentials(AggregatorSettings(kafka_security_protocol="SSL"))
    assert isinstance(creds, faust.SSLCredentials)


def test_bootstrap_list_becomes_faust_urls() -> None:
    assert broker_urls("a:1, b:2") == ["kafka://a:1", "kafka://b:2"]


def test_consumer_refreshes_partition_leaders_within_seconds(tmp_path: Path) -> None:
    # A member handed a partition whose leader moved must not wait minutes to learn the new one.
    from services.aggregator.app import create_app

    app = create_app(AggregatorSettings(data_dir=tmp_path))
    assert app.conf.consumer_metadata_max_age_ms == 5_000
    custom = AggregatorSettings(data_dir=tmp_path, metadata_max_age_s=2)
    assert create_app(custom).conf.consumer_metadata_max_age_ms == 2_000
