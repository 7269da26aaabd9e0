"""The local stack against the real servers: produce/consume, write/read, and the CLI's promises."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services import stack as local_stack
from services.devtools.procs import free_port
from services.stack.settings import repo_root

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "services.cli.main", "stack"]


async def test_produce_and_consume_through_the_real_broker(
    kafka_bootstrap: str, unique_id: str
) -> None:
    topic = f"test-stack-{unique_id}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            sent = [
                await producer.send_and_wait(topic, f"value-{i}".encode(), key=b"op-1")
                for i in range(5)
            ]
        finally:
            await producer.stop()
        assert len({m.partition for m in sent}) == 1  # one key, one partition
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
            group_id=f"test-stack-{unique_id}", enable_auto_commit=False,
        )  # fmt: skip
        await consumer.start()
        try:
            got: list[bytes] = []
            deadline = time.monotonic() + 20
            while len(got) < 5 and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                got += [r.value for records in batches.values() for r in records if r.value]
        finally:
            await consumer.stop()
        assert got == [f"value-{i}".encode() for i in range(5)]
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def test_write_and_read_the_real_postgres(database_url: str, unique_id: str) -> None:
    table = f"test_stack_{unique_id}"
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, pence bigint NOT NULL)")
        await conn.executemany(f"INSERT INTO {table} VALUES ($1, $2)", [(1, 7_900_000), (2, 1)])
        assert await conn.fetchval(f"SELECT sum(pence) FROM {table}") == 7_900_001
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


def test_status_exits_zero_when_up(kafka_bootstrap: str) -> None:
    result = subprocess.run([*CLI, "status"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert kafka_bootstrap in result.stdout


def test_env_prints_export_lines(stack: local_stack.StackInfo) -> None:
    result = subprocess.run([*CLI, "env"], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.splitlines() == [
        f"export KAFKA_BOOTSTRAP_SERVERS={stack.kafka_bootstrap}",
        f"export DATABASE_URL={stack.database_url}",
        f"export OPSLEDGER_OIDC_ISSUER={stack.issuer}",
        # The stack gave its PostgreSQL the service roles: query may create and close.
        "export OPSLEDGER_QUERY_OPERATIONS_DATABASE_URL="
        + stack.database_url.replace("://opsledger@", "://opsledger_registrar@"),
    ]


# ---- a second, private stack (never the shared one) -------------------------------------


@pytest.fixture
def private_stack(unique_id: str) -> Iterator[dict[str, str]]:
    """Env for a stack in its own directory on its own ports; torn down afterwards."""
    directory = repo_root() / ".local" / f"test-stack-{unique_id}"
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "OPSLEDGER_OIDC_ISSUER",
                        "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS", "OPSLEDGER_DATABASE_URL"}}  # fmt: skip
    env |= {
        "OPSLEDGER_STACK_DIR": str(directory),
        "OPSLEDGER_STACK_KAFKA_PORT": str(free_port()),
        "OPSLEDGER_STACK_KAFKA_CONTROLLER_PORT": str(free_port()),
        "OPSLEDGER_STACK_PG_PORT": str(free_port()),
        "OPSLEDGER_STACK_ISSUER_PORT": str(free_port()),
        "OPSLEDGER_STACK_MIGRATE": "false",  # this test is about processes, not the schema
    }
    yield env
    subprocess.run([*CLI, "down"], env=env, capture_output=True, timeout=120, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def test_taken_kafka_port_fails_fast_and_names_it(private_stack: dict[str, str]) -> None:
    port = int(private_stack["OPSLEDGER_STACK_KAFKA_PORT"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        started = time.monotonic()
        result = subprocess.run(
            [*CLI, "up"], env=private_stack, capture_output=True, text=True, timeout=60
        )
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert str(port) in result.stderr, result.stderr
    assert elapsed < 60


def test_down_leaves_none_of_its_processes_running(private_stack: dict[str, str]) -> None:
    up = subprocess.run([*CLI, "up"], env=private_stack, capture_output=True, text=True,
                        timeout=180)  # fmt: skip
    assert up.returncode == 0, up.stderr
    status = subprocess.run([*CLI, "status"], env=private_stack, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert status.returncode == 0, status.stdout + status.stderr
    directory = Path(private_stack["OPSLEDGER_STACK_DIR"])
    pids = [
        _pid_in(directory / "kafka" / "kafka.pid"),
        _pid_in(directory / "postgres" / "postgres.pid"),
        _pid_in(directory / "issuer" / "issuer.pid"),
    ]
    assert all(psutil.pid_exists(pid) for pid in pids)

    again = subprocess.run([*CLI, "up"], env=private_stack, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr

    down = subprocess.run([*CLI, "down"], env=private_stack, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert [pid for pid in pids if _alive(pid)] == []
    after = subprocess.run([*CLI, "status"], env=private_stack, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert after.returncode != 0


def test_external_servers_start_nothing(
    private_stack: dict[str, str], stack: local_stack.StackInfo
) -> None:
    # The shared stack, named by another spelling of its address, counts as external; so does
    # an identity provider named by OPSLEDGER_OIDC_ISSUER (here the shared development issuer).
    assert stack.issuer is not None
    env = private_stack | {
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap.replace("127.0.0.1", "localhost"),
        "DATABASE_URL": stack.database_url.replace("127.0.0.1", "localhost"),
        "OPSLEDGER_OIDC_ISSUER": stack.issuer,
    }
    result = subprocess.run([*CLI, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "external" in result.stderr
    directory = Path(env["OPSLEDGER_STACK_DIR"])
    assert not list(directory.glob("*/*.pid"))


def _pid_in(path: Path) -> int:
    import json

    return int(json.loads(path.read_text())["pid"])


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_api_restarts_single_parts_in_process(
    private_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What fault-injection tests do: SIGKILL the broker, stop PostgreSQL, bring both back.
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "OPSLEDGER_OIDC_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in private_stack.items():
        if name.startswith("OPSLEDGER_STACK_"):
            monkeypatch.setenv(name, value)
    info = local_stack.ensure_up(say=lambda _: None)
    assert info.started == {"kafka", "postgres", "issuer"}
    kafka_pid = local_stack.pid_of("kafka")
    assert kafka_pid is not None

    assert local_stack.kill_kafka() is True
    assert not _alive(kafka_pid)
    assert [s.healthy for s in local_stack.status()] == [False, True, True]
    assert local_stack.start_kafka() is True
    assert local_stack.pid_of("kafka") not in (None, kafka_pid)

    assert local_stack.stop_postgres() is True
    assert [s.healthy for s in local_stack.status()] == [True, False, True]
    assert local_stack.start_postgres() is True
    assert all(s.healthy for s in local_stack.status())

    assert local_stack.down() == {"kafka", "postgres", "issuer"}
