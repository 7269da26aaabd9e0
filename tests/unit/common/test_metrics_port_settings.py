"""The metrics port is declared once (`MetricsPortSettings`) and each service reads it under its
own names, so one environment configures ingest's and query's metrics ports apart."""

from __future__ import annotations

import pydantic
import pytest

from services.common.settings import MetricsPortSettings
from services.ingest.settings import IngestSettings
from services.query.settings import QuerySettings


def test_each_service_reads_its_own_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLEDGER_INGEST_METRICS_PORT", "9101")
    monkeypatch.setenv("OPSLEDGER_INGEST_METRICS_HOST", "127.0.0.2")
    monkeypatch.setenv("OPSLEDGER_QUERY_METRICS_PORT", "9102")
    monkeypatch.delenv("OPSLEDGER_QUERY_METRICS_HOST", raising=False)
    monkeypatch.setenv("OPSLEDGER_METRICS_PORT", "9999")  # nobody's name: ignored
    ingest, query = IngestSettings(env="test"), QuerySettings(env="test")
    assert (ingest.metrics_port, ingest.metrics_host) == (9101, "127.0.0.2")
    assert (query.metrics_port, query.metrics_host) == (9102, "0.0.0.0")


def test_the_bounds_and_the_field_name_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSLEDGER_QUERY_METRICS_PORT", "0")
    with pytest.raises(pydantic.ValidationError, match="OPSLEDGER_QUERY_METRICS_PORT"):
        QuerySettings(env="test")
    monkeypatch.delenv("OPSLEDGER_INGEST_METRICS_PORT", raising=False)
    assert IngestSettings(env="test").metrics_port is None
    assert IngestSettings(env="test", metrics_port=9103).metrics_port == 9103


def test_a_service_must_name_itself() -> None:
    with pytest.raises(TypeError, match="service_name"):

        class Nameless(MetricsPortSettings):
            pass
