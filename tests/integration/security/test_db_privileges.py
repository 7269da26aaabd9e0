"""Least privilege on the real PostgreSQL: each service role does its job, and each statement
outside it is refused with "permission denied" (deploy/postgres/grants.sql, applied by the
local stack as by deployments).

The aggregator's real writer runs as ``opsledger_aggregator`` (every kind, a void, a retry and
a conflict), so the grants are shown to be enough as well as to refuse.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from schemas.examples import example_events
from services.common import access_log
from services.common.auth import Principal
from services.common.db import create_pool
from services.common.wire import Submission, encode_submission
from services.ledger.writer import BatchWriter
from services.query.app import create_app as create_query
from services.query.settings import QuerySettings
from services.stack import roles
from services.stack.devissuer.tokens import dev_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def role_pools(database_url: str) -> AsyncIterator[dict[str, asyncpg.Pool]]:
    await roles.apply(database_url)  # what `opsledger stack up` does; idempotent
    pools = {
        role: await create_pool(roles.role_url(database_url, role), max_size=2)
        for role in roles.SERVICE_ROLES
    }
    yield pools
    for pool in pools.values():
        await pool.close()


def _events(operation_id: str) -> list[dict[str, Any]]:
    events = copy.deepcopy(example_events())
    ids = {e["event_id"]: str(uuid.uuid4()) for e in events}
    for e in events:
        e["event_id"] = ids[e["event_id"]]
        e["operation_id"] = operation_id
        if e["type"] == "event_voided":
            e["payload"]["voided_event_id"] = ids[e["payload"]["voided_event_id"]]
    return events


@pytest.fixture(scope="module")
async def written(role_pools: dict[str, asyncpg.Pool]) -> str:
    """An operation written by the real BatchWriter connected as opsledger_aggregator."""
    op = f"priv-{uuid.uuid4().hex[:8]}"
    events = _events(op)
    conflicting = copy.deepcopy(events[0])
    conflicting["payload"]["warrant_ref"] = "W-OTHER"

    def value(batch: list[dict[str, Any]]) -> bytes:
        return encode_submission(
            Submission(op, datetime.now(UTC).isoformat(), "field-officer-1", batch)
        )

    records = [(0, i, value(events[i : i + 4])) for i in range(0, len(events), 4)]
    n = len(records)
    records += [(0, n, value(events[:2])), (0, n + 1, value([conflicting]))]  # retry, conflict
    writer = BatchWriter(
        role_pools["opsledger_aggregator"], topic=f"priv-{op}", consumer_group=f"priv-{op}"
    )
    await writer.apply_records(records)
    return op


async def test_the_aggregator_role_writes_every_kind_a_void_and_a_conflict(
    role_pools: dict[str, asyncpg.Pool], written: str
) -> None:
    pool = role_pools["opsledger_query"]
    assert (
        await pool.fetchval("SELECT count(*) FROM ledger.events WHERE operation_id = $1", written)
        == 13
    )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM ledger.voids WHERE operation_id = $1 AND applied", written
        )
        == 1
    )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM ledger.conflicts WHERE operation_id = $1", written
        )
        == 1
    )
    assert (
        await pool.fetchval("SELECT seq FROM ledger.chain_heads WHERE operation_id = $1", written)
        == 13
    )


# (role, statement): each must be refused with permission denied.
REFUSED = [
    ("opsledger_aggregator", "UPDATE ledger.events SET unit = 'x' WHERE operation_id = $1"),
    ("opsledger_aggregator", "DELETE FROM ledger.events WHERE operation_id = $1"),
    ("opsledger_aggregator", "UPDATE ledger.contributions SET delta = 0 WHERE operation_id = $1"),
    ("opsledger_aggregator", "DELETE FROM ledger.contributions WHERE operation_id = $1"),
    ("opsledger_aggregator", "UPDATE ledger.conflicts SET body = '{}' WHERE operation_id = $1"),
    ("opsledger_aggregator", "DELETE FROM ledger.conflicts WHERE operation_id = $1"),
    ("opsledger_aggregator", "DELETE FROM ledger.totals WHERE operation_id = $1"),
    ("opsledger_aggregator", "DELETE FROM ledger.voids WHERE operation_id = $1"),
    ("opsledger_aggregator", "UPDATE ledger.voids SET operation_id = 'x' WHERE operation_id = $1"),
    ("opsledger_aggregator", "TRUNCATE ledger.totals"),
    ("opsledger_aggregator", "SELECT * FROM audit.access_log WHERE operation_id = $1"),
    (
        "opsledger_aggregator",
        "INSERT INTO audit.access_log (principal, role, action, seq, prev_hash, hash)"
        " VALUES ($1, 'x', 'x', 0, '', '')",
    ),
    ("opsledger_aggregator", "CREATE TABLE ledger.mine (x int)"),
    # It reads where a closed operation froze (every batch does), never records a closure.
    (
        "opsledger_aggregator",
        "INSERT INTO tlog.closures (operation_id, last_offset, tree_size, closed_at, closed_by)"
        " VALUES ($1, 0, 0, now(), 'x')",
    ),
    ("opsledger_aggregator", "DROP TABLE ledger.totals"),
]
# The registrar writes operation records, closures and checkpoints: never the field history,
# the tally, the access log, nor a chain head's hash.
REFUSED += [
    ("opsledger_registrar", "UPDATE ledger.events SET unit = 'x' WHERE operation_id = $1"),
    ("opsledger_registrar", "UPDATE ledger.contributions SET delta = 0 WHERE operation_id = $1"),
    ("opsledger_registrar", "INSERT INTO ledger.events SELECT * FROM ledger.events"
     " WHERE operation_id = $1"),
    ("opsledger_registrar", "DELETE FROM ledger.events WHERE operation_id = $1"),
    ("opsledger_registrar", "SELECT * FROM ledger.contributions WHERE operation_id = $1"),
    ("opsledger_registrar", "UPDATE ledger.totals SET value = value + 1 WHERE operation_id = $1"),
    ("opsledger_registrar", "UPDATE ledger.chain_heads SET hash = '' WHERE operation_id = $1"),
    ("opsledger_registrar", "DELETE FROM ledger.operations WHERE operation_id = $1"),
    ("opsledger_registrar", "UPDATE tlog.closures SET last_offset = 0 WHERE operation_id = $1"),
    ("opsledger_registrar", "DELETE FROM tlog.checkpoints WHERE operation_id = $1"),
    ("opsledger_registrar", "SELECT * FROM audit.access_log WHERE operation_id = $1"),
]  # fmt: skip
for _role in ("opsledger_query", "opsledger_auditor"):
    REFUSED += [
        (_role, "INSERT INTO ledger.events SELECT * FROM ledger.events WHERE operation_id = $1"),
        (_role, "UPDATE ledger.totals SET value = value + 1 WHERE operation_id = $1"),
        (_role, "DELETE FROM ledger.events WHERE operation_id = $1"),
        (_role, "UPDATE ledger.chain_heads SET seq = 0 WHERE operation_id = $1"),
        (_role, "UPDATE ledger.consumer_offsets SET last_offset = 0 WHERE topic = $1"),
        (_role, "UPDATE audit.access_log SET principal = 'x' WHERE principal = $1"),
        (_role, "DELETE FROM audit.access_log WHERE principal = $1"),
        (_role, "UPDATE audit.access_log_head SET seq = 0 WHERE hash = $1"),
        (_role, "DELETE FROM audit.access_log_head WHERE hash = $1"),
        (_role, "TRUNCATE audit.access_log"),
        (_role, "ALTER TABLE audit.access_log DISABLE TRIGGER access_log_append_only"),
        (_role, "SET session_replication_role = replica"),
        (_role, "CREATE TABLE audit.mine (x int)"),
    ]


@pytest.mark.parametrize(("role", "sql"), REFUSED, ids=[f"{r}: {s[:60]}" for r, s in REFUSED])
async def test_statement_is_refused(
    role_pools: dict[str, asyncpg.Pool], written: str, role: str, sql: str
) -> None:
    args = [written] if "$1" in sql else []
    with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
        await role_pools[role].execute(sql, *args)
    assert "permission denied" in str(caught.value) or "must be owner" in str(caught.value)


async def test_nothing_a_refused_statement_touched_changed(
    role_pools: dict[str, asyncpg.Pool], written: str
) -> None:
    pool = role_pools["opsledger_query"]
    assert (
        await pool.fetchval("SELECT count(*) FROM ledger.events WHERE operation_id = $1", written)
        == 13
    )
    assert (
        await pool.fetchval(
            "SELECT sum(value) FROM ledger.totals"
            " WHERE operation_id = $1 AND metric = 'warrants_executed'",
            written,
        )
        == 2
    )


@pytest.mark.parametrize("role", ["opsledger_query", "opsledger_auditor"])
async def test_readers_append_to_the_access_log_through_its_chain(
    role_pools: dict[str, asyncpg.Pool], written: str, role: str
) -> None:
    pool = role_pools[role]
    who = Principal(subject=f"{role}-reader", role="auditor")
    row_id = await access_log.record(pool, who, "history", written, {"by": role})
    assert row_id is not None
    row = await pool.fetchrow(
        "SELECT principal, seq, prev_hash FROM audit.access_log WHERE id = $1", row_id
    )
    assert row is not None and row["principal"] == f"{role}-reader"
    head = await pool.fetchrow("SELECT seq, hash FROM audit.access_log_head")
    assert head is not None and head["seq"] >= row["seq"]
    # a row that does not extend the head is refused even with INSERT granted
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await pool.execute(
            "INSERT INTO audit.access_log (seq, principal, role, action, prev_hash, hash)"
            " VALUES (1, 'forger', 'auditor', 'history', $1, $1)",
            "0" * 64,
        )


async def test_the_aggregator_cannot_lock_the_access_log_head(
    role_pools: dict[str, asyncpg.Pool],
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await role_pools["opsledger_aggregator"].fetchrow(
            "SELECT * FROM audit.access_log_lock_head()"
        )


async def test_the_query_service_does_every_read_as_its_role(
    role_pools: dict[str, asyncpg.Pool], written: str, database_url: str, kafka_bootstrap: str
) -> None:
    """The query app connected as opsledger_query: totals, history, verify, export and the
    access-log listing all answer, and the audit reads are in the chained log."""
    settings = QuerySettings(
        env="test",
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=roles.role_url(database_url, "opsledger_query"),
        consumer_group=f"priv-{written}",
        topic=f"priv-{written}",
    )
    app = create_query(settings)
    subject = f"auditor-as-query-role-{written}"
    headers = {"Authorization": "Bearer " + dev_token(role="auditor", subject=subject)}
    base = f"/v1/operations/{written}"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://query") as client:
            for path in (f"{base}/totals", f"{base}/events", f"{base}/verify", f"{base}/export",
                         "/v1/audit/access-log"):  # fmt: skip
                r = await client.get(path, headers=headers)
                assert r.status_code == 200, (path, r.text)
    actions = [
        r["action"]
        for r in await role_pools["opsledger_auditor"].fetch(
            "SELECT action FROM audit.access_log WHERE principal = $1 ORDER BY seq", subject
        )
    ]
    assert actions == ["totals", "history", "verify", "export", "access_log"]
    async with role_pools["opsledger_auditor"].acquire() as conn:
        assert (await access_log.verify_chain(conn)).ok


async def test_the_query_service_creates_and_closes_operations_only_as_the_registrar(
    role_pools: dict[str, asyncpg.Pool], database_url: str, kafka_bootstrap: str
) -> None:
    """Query runs as opsledger_query (reads only): with the registrar URL an admin creates and
    closes over HTTP; without it both routes answer 503 saying how to enable them."""
    op = f"reg-{uuid.uuid4().hex[:8]}"
    common: dict[str, Any] = {
        "env": "test",
        "kafka_bootstrap_servers": kafka_bootstrap,
        "database_url": roles.role_url(database_url, "opsledger_query"),
        "operations_topic": f"priv-{op}.operations",
    }
    headers = {"Authorization": "Bearer " + dev_token(role="admin", subject=f"admin-{op}")}
    new = {
        "operation_id": op,
        "title": "Registrar test",
        "areas": ["Lambeth"],
        "planned_start": "2026-11-23T06:00:00Z",
        "planned_end": "2026-11-29T22:00:00Z",
    }

    async def client_of(settings: QuerySettings) -> AsyncIterator[httpx.AsyncClient]:
        app = create_query(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://query") as c:
                yield c

    read_only = QuerySettings(**common, operations_database_url=None)  # whatever the env says
    async for client in client_of(read_only):
        for path, body in (("/v1/operations", new), (f"/v1/operations/{op}/close", None)):
            r = await client.post(path, json=body, headers=headers)
            assert r.status_code == 503, r.text
            assert r.json()["type"].endswith("/operations-not-enabled")
            assert "OPSLEDGER_QUERY_OPERATIONS_DATABASE_URL" in r.json()["detail"]
    reader = role_pools["opsledger_query"]
    assert await reader.fetchval("SELECT count(*) FROM ledger.operations WHERE operation_id = $1",
                                 op) == 0  # fmt: skip

    registrar = QuerySettings(
        **common, operations_database_url=roles.role_url(database_url, "opsledger_registrar")
    )
    async for client in client_of(registrar):
        made = await client.post("/v1/operations", json=new, headers=headers)
        assert made.status_code == 201, made.text
        closed = await client.post(f"/v1/operations/{op}/close", headers=headers)
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed"
        again = await client.post(f"/v1/operations/{op}/close", headers=headers)
        assert again.status_code == 409, again.text
        shown = await client.get(f"/v1/operations/{op}", headers=headers)
        assert shown.json()["title"] == "Registrar test" and shown.json()["status"] == "closed"
    closure = await reader.fetchrow(
        "SELECT tree_size, closed_by FROM tlog.closures WHERE operation_id = $1", op
    )
    assert closure is not None and dict(closure) == {"tree_size": 0, "closed_by": f"admin-{op}"}
