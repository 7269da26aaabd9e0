"""`opsledger stack up --brokers 3` for real: three KRaft nodes, per-broker status, topics with
three copies and min.insync.replicas=2, `down` stops all, and one broker is the default again."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common.settings import CommonSettings
from services.common.topics import ensure_topics
from services.devtools.procs import free_port, free_port_run
from services.stack.settings import repo_root

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "services.cli.main", "stack"]
HOSTS = ["127.0.0.41", "127.0.0.42", "127.0.0.43"]


@pytest.fixture
def cluster_env(unique_id: str) -> Iterator[dict[str, str]]:
    directory = repo_root() / ".local" / f"test-cluster-{unique_id}"
    base = free_port_run(6, HOSTS)
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "OPSLEDGER_TOPIC_REPLICATION",
                        "OPSLEDGER_OIDC_ISSUER",
                        "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS", "OPSLEDGER_DATABASE_URL"}}  # fmt: skip
    env |= {
        "OPSLEDGER_STACK_DIR": str(directory),
        "OPSLEDGER_STACK_KAFKA_PORT": str(base),
        "OPSLEDGER_STACK_KAFKA_CONTROLLER_PORT": str(base + 1),
        "OPSLEDGER_STACK_PG_PORT": str(free_port()),
        "OPSLEDGER_STACK_ISSUER_PORT": str(free_port()),
        "OPSLEDGER_STACK_CLUSTER_HOSTS": ",".join(HOSTS),
        "OPSLEDGER_STACK_KAFKA_HEAP": "-Xms128m -Xmx384m",
        "OPSLEDGER_STACK_MIGRATE": "false",
    }
    yield env
    subprocess.run([*CLI, "down"], env=env, capture_output=True, timeout=180, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def _cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


async def _replication(bootstrap: str, topic: str) -> tuple[set[int], str]:
    await ensure_topics(
        CommonSettings(kafka_bootstrap_servers=bootstrap, topic=topic, topic_replication=3),
        timeout_s=20,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    copies = {len(p["replicas"]) for p in described[0]["partitions"]}
    entries = {c[0]: c[1] for res in configs for r in res.resources for c in r[4]}
    return copies, entries["min.insync.replicas"]


def test_three_brokers_up_status_down(cluster_env: dict[str, str]) -> None:
    up = _cli(cluster_env, "up", "--brokers", "3", timeout=240)
    assert up.returncode == 0, up.stderr
    status = _cli(cluster_env, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    doc = json.loads(status.stdout)
    parts = {p["name"]: p for p in doc["parts"]}
    assert doc["healthy"] is True
    assert sorted(parts) == ["issuer", "kafka-1", "kafka-2", "kafka-3", "postgres"]
    base = int(cluster_env["OPSLEDGER_STACK_KAFKA_PORT"])
    assert [parts[f"kafka-{n}"]["port"] for n in (1, 2, 3)] == [base, base + 2, base + 4]
    pids = [parts[n]["pid"] for n in sorted(parts)]
    assert len(set(pids)) == 5 and all(psutil.pid_exists(pid) for pid in pids)
    assert all(p["healthy"] for p in parts.values())

    env_lines = _cli(cluster_env, "env").stdout.splitlines()
    bootstrap = ",".join(f"{h}:{base + 2 * i}" for i, h in enumerate(HOSTS))
    assert f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap}" in env_lines
    assert "export OPSLEDGER_TOPIC_REPLICATION=3" in env_lines
    copies, min_isr = asyncio.run(_replication(bootstrap, "cluster-check"))
    assert copies == {3} and min_isr == "2"

    # A second `up` keeps the cluster; switching to one broker needs a `down` first.
    again = _cli(cluster_env, "up", timeout=120)
    assert again.returncode == 0, again.stderr
    assert all(f"{name}: already running" in again.stderr for name in parts), again.stderr
    assert "started nothing" in again.stderr
    switch = _cli(cluster_env, "up", "--brokers", "1", timeout=60)
    assert switch.returncode != 0 and "stack down" in switch.stderr, switch.stderr

    down = _cli(cluster_env, "down", timeout=180)
    assert down.returncode == 0, down.stderr
    assert [pid for pid in pids if _alive(pid)] == []
    after = _cli(cluster_env, "status", "--json")
    assert after.returncode == 1
    assert [p["name"] for p in json.loads(after.stdout)["parts"]] == ["kafka", "postgres", "issuer"]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
