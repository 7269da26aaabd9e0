"""`opsledger operation create | show | close | list` on the real stack, with the role rules:
an admin creates and closes, a supervisor reads only its own operations; each change is in
``ledger.operations`` and is the latest record of its key on the compacted topic."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.settings import CommonSettings
from services.stack.devissuer.tokens import dev_token
from tests.integration.audit.test_verify_db import CLI_SUBJECT, cli, cli_token

pytestmark = pytest.mark.integration


async def _topic_records(bootstrap: str, topic: str, key: str) -> list[dict[str, object]]:
    """Every record of ``key`` on the operations topic, read from the start (bounded)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 20)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[dict[str, object]] = []
        while await consumer.position(tp) < end:
            batch = await asyncio.wait_for(consumer.getmany(tp, timeout_ms=1000), 20)
            out += [orjson.loads(m.value) for m in batch.get(tp, []) if m.key == key.encode()]
        return out
    finally:
        await asyncio.wait_for(consumer.stop(), 20)


async def test_admin_creates_and_closes_supervisor_reads_its_own(
    database_url: str, kafka_bootstrap: str, unique_id: str
) -> None:
    op = f"op-{unique_id}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    admin = cli_token("admin", "admin-ops-tests")
    create = (
        "operation", "create", "--operation", op, "--title", "Week of action against county lines",
        "--start", "2026-11-23T06:00:00Z", "--end", "2026-11-29T22:00:00Z",
        "--area", "Lambeth", "--area", "Southwark",
    )  # fmt: skip

    field = await cli(*create, database_url=database_url, OPSLEDGER_TOKEN=cli_token("field"), **env)
    assert field.returncode == 2
    assert "needs one of admin" in field.stderr

    made = await cli(*create, database_url=database_url, OPSLEDGER_TOKEN=admin, **env)
    assert made.returncode == 0, made.stderr
    record = orjson.loads(made.stdout)
    assert record["title"] == "Week of action against county lines"
    assert record["areas"] == ["Lambeth", "Southwark"]
    assert record["status"] == "active"  # its planned start has passed

    again = await cli(*create, database_url=database_url, OPSLEDGER_TOKEN=admin, **env)
    assert again.returncode == 1
    assert "already exists" in again.stderr

    own = _scoped("supervisor", [op])
    shown = await cli("operation", "show", "--operation", op, database_url=database_url,
                      OPSLEDGER_TOKEN=own, **env)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert orjson.loads(shown.stdout)["planned_end"] == "2026-11-29T22:00:00Z"

    other = _scoped("supervisor", [f"other-{unique_id}"])
    refused = await cli("operation", "show", "--operation", op, database_url=database_url,
                        OPSLEDGER_TOKEN=other, **env)  # fmt: skip
    assert refused.returncode == 2
    assert f"not scoped to operation {op!r}" in refused.stderr
    listed = await cli("operation", "list", database_url=database_url, OPSLEDGER_TOKEN=other, **env)
    assert listed.returncode == 0
    assert op not in [r["operation_id"] for r in orjson.loads(listed.stdout)]

    sup_close = await cli("operation", "close", "--operation", op, database_url=database_url,
                          OPSLEDGER_TOKEN=own, **env)  # fmt: skip
    assert sup_close.returncode == 2

    closed = await cli("operation", "close", "--operation", op, database_url=database_url,
                       OPSLEDGER_TOKEN=admin, **env)  # fmt: skip
    assert closed.returncode == 0, closed.stderr
    assert orjson.loads(closed.stdout)["status"] == "closed"
    twice = await cli("operation", "close", "--operation", op, database_url=database_url,
                      OPSLEDGER_TOKEN=admin, **env)  # fmt: skip
    assert twice.returncode == 1
    assert "already closed" in twice.stderr

    listed = await cli("operation", "list", database_url=database_url,
                       OPSLEDGER_TOKEN=cli_token("auditor"), **env)  # fmt: skip
    mine = [r for r in orjson.loads(listed.stdout) if r["operation_id"] == op]
    assert [(r["status"], r["closed_by"]) for r in mine] == [("closed", "admin-ops-tests")]

    on_log = await _topic_records(kafka_bootstrap, CommonSettings().operations_topic, op)
    assert [r["status"] for r in on_log] == ["active", "closed"]

    # Reads follow the access log's one rule: the auditor's list is logged, the supervisor's
    # read of its own operation is not.
    conn = await asyncpg.connect(database_url)
    try:
        logged = await conn.fetch(
            "SELECT principal FROM audit.access_log WHERE action = 'operations'"
            " AND principal = ANY($1::text[])",
            ["supervisor-t", CLI_SUBJECT],
        )
    finally:
        await conn.close()
    assert {r["principal"] for r in logged} == {CLI_SUBJECT}


def _scoped(role: str, operations: list[str]) -> str:
    return dev_token(role, operations, subject=f"{role}-t")
