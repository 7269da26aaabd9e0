"""Fixtures of the aggregator's integration tests: a private topic and consumer group per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import AggregatorProcess, Target


@pytest.fixture
def target(kafka_bootstrap: str, database_url: str, unique_id: str) -> Target:
    """A topic, DLQ and consumer group that only this test uses, on the shared stack."""
    return Target(kafka_bootstrap, database_url, f"agg-test-{unique_id}", f"agg-test-{unique_id}")


@pytest.fixture
def aggregator(target: Target, tmp_path: Path) -> Iterator[AggregatorProcess]:
    """An aggregator process for the test's target (not started); stopped at the end."""
    proc = AggregatorProcess(target, tmp_path)
    yield proc
    proc.stop()
