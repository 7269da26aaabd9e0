"""`stack up --brokers N`: where each node listens, what it is configured with, what status says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.stack.kafka import KafkaPart
from services.stack.manager import PartStatus, _part, kafka_names, part_names
from services.stack.procs import StackError
from services.stack.settings import StackSettings
from tests.reliability.netfault import Isolation


def _settings(tmp_path: Path, **kw: object) -> StackSettings:
    return StackSettings(dir=tmp_path, kafka_port=44192, kafka_controller_port=44193, **kw)  # type: ignore[arg-type]


def test_one_broker_is_the_default(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert s.kafka_nodes == 1
    assert s.kafka_bootstrap == "127.0.0.1:44192"
    assert part_names(s) == ["kafka", "postgres", "issuer"]


def test_a_recorded_cluster_gives_each_node_its_address_and_ports(tmp_path: Path) -> None:
    (tmp_path / "kafka-cluster.json").write_text(json.dumps({"brokers": 3}))
    s = _settings(tmp_path)
    assert s.kafka_nodes == 3
    assert kafka_names(s) == ["kafka-1", "kafka-2", "kafka-3"]
    assert s.kafka_bootstrap == "127.0.0.11:44192,127.0.0.12:44194,127.0.0.13:44196"
    nodes = [_part(name, s) for name in kafka_names(s)]
    assert [(p.address, p.controller_port) for p in nodes if isinstance(p, KafkaPart)] == [
        ("127.0.0.11:44192", 44193),
        ("127.0.0.12:44194", 44195),
        ("127.0.0.13:44196", 44197),
    ]
    assert len({p.home for p in nodes}) == 3
    with pytest.raises(StackError, match="kafka-4"):
        _part("kafka-4", s)


def test_a_cluster_node_config_votes_and_keeps_two_copies_in_sync(tmp_path: Path) -> None:
    s = _settings(tmp_path, brokers=3, cluster_hosts="127.0.0.51,127.0.0.52,127.0.0.53")
    node = KafkaPart(s, 2, 3)
    node.home.mkdir(parents=True)
    node._render_config()
    config = dict(
        line.split("=", 1)
        for line in node.config.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert config["node.id"] == "2"
    assert config["controller.quorum.voters"] == (
        "1@127.0.0.51:44193,2@127.0.0.52:44195,3@127.0.0.53:44197"
    )
    assert config["listeners"] == "PLAINTEXT://127.0.0.52:44194,CONTROLLER://127.0.0.52:44195"
    assert config["default.replication.factor"] == "3"
    assert config["min.insync.replicas"] == "2"
    assert config["offsets.topic.replication.factor"] == "3"
    assert config["unclean.leader.election.enable"] == "false"


def test_status_json_names_the_port_of_every_part() -> None:
    kafka = PartStatus("kafka-2", 123, "127.0.0.12:44194", True, False)
    pg = PartStatus("postgres", None, "postgresql://u@127.0.0.1:44432/db", False, True, "down")
    assert kafka.to_dict() == {
        "name": "kafka-2", "pid": 123, "address": "127.0.0.12:44194", "port": 44194,
        "healthy": True, "external": False, "detail": "",
    }  # fmt: skip
    assert pg.port == 44432


def test_the_cut_filters_only_one_loopback_node() -> None:
    cut = Isolation("127.0.0.23", (44196, 44197), 1044196)
    rules = cut.ruleset()
    assert "ip daddr 127.0.0.23 tcp dport { 44196, 44197 } drop" in rules
    assert "ip saddr 127.0.0.23 tcp sport { 44196, 44197 } drop" in rules
    assert "meta skgid 1044196 drop" in rules
    with pytest.raises(ValueError, match="non-loopback"):
        Isolation("10.0.0.5", (1, 2), 3).cut()


def test_an_address_exported_for_the_other_layout_is_still_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.stack.manager import external_kafka

    s = _settings(tmp_path)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:44192")  # exported for one broker
    assert external_kafka(s.model_copy(update={"brokers": 3})) is None
    monkeypatch.setenv(
        "KAFKA_BOOTSTRAP_SERVERS", s.model_copy(update={"brokers": 3}).kafka_bootstrap
    )
    assert external_kafka(s) is None
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    assert external_kafka(s) == "kafka.example:9092"
