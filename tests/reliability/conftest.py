"""Fault-test fixtures: services as real subprocesses on a private topic and consumer group.

Every test gets its own topic, dead-letter topic and consumer group on the shared stack (so
tests never see each other's records), and may ask for a *private* broker or PostgreSQL to
crash: the shared stack the other engineers use is never stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from services import stack as local_stack
from services.devtools.procs import ServiceProcess
from services.stack.devissuer.tokens import dev_token

from .checker import Report
from .cluster import PrivateCluster
from .faults import PrivateStack

# Where each run appends its measured figures (docs/reliability.md is filled from these).
RESULTS = Path(os.environ.get("OPSLEDGER_RELIABILITY_RESULTS", ".local/reliability-results.jsonl"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


@dataclass
class Cluster:
    """One test's world: a topic, a consumer group, the services it started."""

    name: str
    bootstrap: str
    dsn: str
    log_dir: Path
    topic: str
    group: str
    services: list[ServiceProcess] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "OPSLEDGER_ENV": "test",
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "DATABASE_URL": self.dsn,
            "OPSLEDGER_DATABASE_URL": self.dsn,
            "OPSLEDGER_TOPIC": self.topic,
            "OPSLEDGER_DLQ_TOPIC": f"{self.topic}.dlq",
            "OPSLEDGER_CONSUMER_GROUP": self.group,
            "OPSLEDGER_AGGREGATOR_DATA_DIR": str(self.log_dir / "faust"),
            "OPSLEDGER_LOG_LEVEL": "WARNING",
            # A crashed member's partitions move after this long (the product default is 10 s;
            # 6 s is the broker's minimum), so ten kills fit in about a minute and a half.
            "OPSLEDGER_AGGREGATOR_SESSION_TIMEOUT_S": "6",
            "BROKER_HEARTBEAT_INTERVAL": "1",  # faust reads it; must stay below a third of that
            **self.extra_env,
            **extra,
        }

    def spawn(self, name: str, *, start: bool = True, **extra: str) -> ServiceProcess:
        """A service process on a free port with this cluster's environment."""
        service = ServiceProcess(name, self.env(**extra), self.log_dir)
        self.services.append(service)
        if start:
            service.start()
        return service

    def operations(self, n: int) -> dict[str, str]:
        """``n`` fresh operation ids, each with a field token scoped to it."""
        out = {}
        for i in range(n):
            op = f"{self.name}-op{i}"
            out[op] = dev_token(role="field", operations=[op], subject=f"pc-{op}")
        return out

    def stop_all(self) -> None:
        for service in self.services:
            service.stop()


@pytest.fixture
def cluster(stack: local_stack.StackInfo, unique_id: str, tmp_path: Path) -> Iterator[Cluster]:
    """Services on the shared stack, with a private topic and consumer group."""
    c = Cluster(
        name=f"rel-{unique_id}",
        bootstrap=stack.kafka_bootstrap,
        dsn=stack.database_url,
        log_dir=tmp_path,
        topic=f"rel-{unique_id}",
        group=f"rel-agg-{unique_id}",
    )
    yield c
    c.stop_all()


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[PrivateStack]:
    """A second, throw-away Kafka broker that a test may SIGKILL."""
    part = PrivateStack("kafka", tmp_path / "private-stack")
    part.start()
    yield part
    part.kill()


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[PrivateStack]:
    """A second, throw-away PostgreSQL (migrated) that a test may stop."""
    part = PrivateStack("postgres", tmp_path / "private-stack")
    part.start()
    yield part
    part.stop()


@pytest.fixture
def record_result(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Call with a checker Report (and extras) to append the figures to the results file."""
    started = time.monotonic()
    saved: list[dict[str, Any]] = []

    def record(report: Report, **extra: Any) -> None:
        saved.append(
            {
                "test": request.node.name,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "sent": report.sent,
                "acked": report.acked,
                "refused": report.refused,
                "unresolved": report.unresolved,
                "counted": report.counted,
                "lost": len(report.lost),
                "duplicated": len(report.duplicated),
                "conflicts_sent": report.conflicts_sent,
                "conflicts_unrecorded": len(report.conflicts_unrecorded),
                "totals_mismatches": len(report.totals_diff),
                "topic_records": report.topic_records,
                "topic_event_copies": report.topic_event_copies,
                "ok": report.ok,
                **extra,
            }
        )
        print(f"\n{request.node.name}: {report.line()} {extra}")

    yield record
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        for row in saved:
            row["seconds"] = round(time.monotonic() - started, 1)
            fh.write(json.dumps(row) + "\n")


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    """A private three-broker KRaft cluster shared by the cluster fault tests (started once)."""
    if os.geteuid() == 0 and shutil.which("nft") is None:
        pytest.fail("`nft` is missing: `make test-reliability` installs Debian's nftables")
    kc = PrivateCluster(tmp_path_factory.mktemp("kafka-cluster"))
    for iso in kc.isolations():
        iso.heal()  # a table left by an interrupted run on the same ports
    kc.start()
    yield kc
    kc.down()


@pytest.fixture
def cluster3(
    stack: local_stack.StackInfo, kafka_cluster: PrivateCluster, unique_id: str, tmp_path: Path
) -> Iterator[Cluster]:
    """Services on the three-broker cluster (every node up first), topics with 3 copies."""
    kafka_cluster.start()  # whatever an earlier test left down
    c = Cluster(
        name=f"rel3-{unique_id}",
        bootstrap=kafka_cluster.bootstrap,
        dsn=stack.database_url,
        log_dir=tmp_path,
        topic=f"rel3-{unique_id}",
        group=f"rel3-agg-{unique_id}",
        extra_env={"OPSLEDGER_TOPIC_REPLICATION": "3"},
    )
    yield c
    c.stop_all()
    for iso in kafka_cluster.isolations():
        iso.heal()
