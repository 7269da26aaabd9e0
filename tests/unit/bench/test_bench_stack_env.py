"""The benchmarks' services reach the stack the bench started, wherever its ports are."""

import os

import pytest

import bench.common
import services.stack
from services.stack.manager import StackInfo


def test_ensure_stack_hands_the_stacks_addresses_to_child_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = StackInfo("127.0.0.1:27092", "postgresql://opsledger@127.0.0.1:27432/opsledger")
    monkeypatch.setattr(services.stack, "ensure_up", lambda say: info)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    settings = bench.common.ensure_stack()

    # children inherit os.environ: before the fix they fell back to the default ports
    assert os.environ["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:27092"
    assert os.environ["DATABASE_URL"].endswith("@127.0.0.1:27432/opsledger")
    assert settings.kafka_bootstrap_servers == "127.0.0.1:27092"
