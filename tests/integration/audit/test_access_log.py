"""The access log is append-only: no UPDATE, DELETE or TRUNCATE, whoever asks."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest

from services.common import access_log
from services.common.auth import Principal

from .test_verify_db import cli, cli_token

pytestmark = pytest.mark.integration


async def test_rows_are_appended_and_never_changed(pool: asyncpg.Pool, op_id: str) -> None:
    who = Principal(subject="auditor-x", role="auditor")
    row_id = await access_log.record(pool, who, "verify", op_id, {"why": "test"})
    entries, _ = await access_log.entries(pool, operation_id=op_id)
    assert [(e["id"], e["principal"], e["action"], e["params"]) for e in entries] == [
        (row_id, "auditor-x", "verify", {"why": "test"})
    ]
    for sql in (
        "UPDATE audit.access_log SET principal = 'someone-else' WHERE id = $1",
        "DELETE FROM audit.access_log WHERE id = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(sql, row_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("TRUNCATE audit.access_log")
    assert await pool.fetchval("SELECT principal FROM audit.access_log WHERE id = $1", row_id) == (
        "auditor-x"
    )


async def test_concurrent_writers_extend_one_chain(pool: asyncpg.Pool, op_id: str) -> None:
    """Forty writers at once on six connections: one chain, no fork, no gap, verify intact."""
    who = Principal(subject="auditor-race", role="auditor")
    before = await pool.fetchval("SELECT seq FROM audit.access_log_head")
    ids = await asyncio.gather(
        *(access_log.record(pool, who, "history", op_id, {"n": n}) for n in range(40))
    )
    rows = await pool.fetch(
        "SELECT seq FROM audit.access_log WHERE id = ANY($1::bigint[]) ORDER BY seq",
        ids,
    )
    seqs = [r["seq"] for r in rows]
    assert len(set(seqs)) == 40 and seqs[0] > before
    async with pool.acquire() as conn:
        report = await access_log.verify_chain(conn)
    assert report.ok, report.problems
    assert report.head_seq >= seqs[-1]


async def _edit(pool: asyncpg.Pool, sql: str, *args: object) -> None:
    """What a malicious DBA (the table's owner) would do: lift the triggers around one statement."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit.access_log DISABLE TRIGGER USER")
        await conn.execute(sql, *args)
        for trigger in ("access_log_append_only", "access_log_no_truncate", "access_log_chain"):
            await conn.execute(f"ALTER TABLE audit.access_log ENABLE ALWAYS TRIGGER {trigger}")


async def test_verify_access_log_names_an_edited_row(
    pool: asyncpg.Pool, op_id: str, database_url: str
) -> None:
    who = Principal(subject="auditor-victim", role="auditor")
    row_id = await access_log.record(pool, who, "export", op_id, {"format": "csv"})
    seq = await pool.fetchval("SELECT seq FROM audit.access_log WHERE id = $1", row_id)
    ok = await cli("verify", "--access-log", database_url=database_url)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "access log intact" in ok.stdout
    await _edit(
        pool, "UPDATE audit.access_log SET principal = 'someone-else' WHERE id = $1", row_id
    )
    try:
        bad = await cli("verify", "--access-log", "--json", database_url=database_url)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        report = orjson.loads(bad.stdout)
        assert report["first_broken_seq"] == seq
        assert f"seq {seq}: hash does not match" in report["problems"][0]
    finally:  # the log is shared by every test: put the row back as it was
        await _edit(
            pool, "UPDATE audit.access_log SET principal = 'auditor-victim' WHERE id = $1", row_id
        )
    async with pool.acquire() as conn:
        assert (await access_log.verify_chain(conn)).ok


async def test_a_removed_last_row_is_detected(pool: asyncpg.Pool, op_id: str) -> None:
    who = Principal(subject="auditor-last", role="auditor")
    row_id = await access_log.record(pool, who, "history", op_id, {})
    row = await pool.fetchrow("SELECT * FROM audit.access_log WHERE id = $1", row_id)
    assert row is not None
    await _edit(pool, "DELETE FROM audit.access_log WHERE id = $1", row_id)
    try:
        async with pool.acquire() as conn:
            report = await access_log.verify_chain(conn)
        assert not report.ok
        assert "the head says seq" in report.problems[-1]
    finally:
        cols = list(row.keys())
        await _edit(
            pool,
            f"INSERT INTO audit.access_log ({', '.join(cols)}) VALUES"  # noqa: S608
            f" ({', '.join(f'${i}' for i in range(1, len(cols) + 1))})",
            *[row[c] for c in cols],
        )
    async with pool.acquire() as conn:
        assert (await access_log.verify_chain(conn)).ok


async def test_the_replica_setting_does_not_switch_the_append_only_rule_off(
    pool: asyncpg.Pool, op_id: str
) -> None:
    """session_replication_role = replica skips ordinary triggers; these fire ALWAYS."""
    who = Principal(subject="auditor-replica", role="auditor")
    row_id = await access_log.record(pool, who, "history", op_id, {})
    async with pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")  # the stack's superuser
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM audit.access_log WHERE id = $1", row_id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE audit.access_log_head SET seq = 0")
        finally:
            await conn.execute("RESET session_replication_role")


async def test_the_cli_needs_a_token_and_logs_its_subject(
    pool: asyncpg.Pool, op_id: str, filled, database_url: str
) -> None:
    none = await cli("verify", "--operation", op_id, database_url=database_url, OPSLEDGER_TOKEN="")
    assert none.returncode == 2
    assert "--token" in none.stderr and "OPSLEDGER_TOKEN" in none.stderr
    sup = await cli(
        "verify", "--operation", op_id, database_url=database_url,
        OPSLEDGER_TOKEN=cli_token("supervisor", "sup-1"),
    )  # fmt: skip
    assert sup.returncode == 2 and "role 'supervisor' may not do this" in sup.stderr
    forged = await cli(
        "verify", "--operation", op_id, database_url=database_url,
        OPSLEDGER_TOKEN=cli_token()[:-4] + "AAAA",
    )  # fmt: skip
    assert forged.returncode == 2 and "refused" in forged.stderr
    admin = await cli(
        "--token", cli_token("admin", "admin-7"), "verify", "--operation", op_id,
        database_url=database_url, OPSLEDGER_TOKEN="",
    )  # fmt: skip
    assert admin.returncode == 0, admin.stdout + admin.stderr
    logged = await pool.fetch(
        "SELECT principal, role FROM audit.access_log"
        " WHERE action = 'verify' AND operation_id = $1",
        op_id,
    )
    assert [(r["principal"], r["role"]) for r in logged] == [("admin-7", "admin")]
