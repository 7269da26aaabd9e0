"""Verify against the real ledger: clean after a stream, and each kind of tampering named."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import asyncpg
import pytest

from services.audit.service import verify_operation
from services.stack.devissuer.tokens import dev_token

pytestmark = pytest.mark.integration

OPSLEDGER = [sys.executable, "-m", "services.cli.main"]
#: Whom the CLI runs as in these tests: the subject of its token, as the access log records it.
CLI_SUBJECT = "auditor-cli-tests"


def cli_token(role: str = "auditor", subject: str = CLI_SUBJECT) -> str:
    return dev_token(role=role, subject=subject)  # type: ignore[arg-type]


async def tamper(pool: asyncpg.Pool, sql: str, *args: Any) -> None:
    """What a malicious DBA would do: lift the append-only trigger around one statement."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE ledger.events DISABLE TRIGGER events_append_only")
        await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE ledger.events ENABLE TRIGGER events_append_only")


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


async def cli(*args: str, database_url: str, **env: str) -> Done:
    """Run the real console command (a child process, so its asyncio.run has its own loop),
    signed in with an auditor token unless ``OPSLEDGER_TOKEN`` is given ("" for none)."""
    env = {"OPSLEDGER_TOKEN": cli_token(), **env}
    proc = await asyncio.create_subprocess_exec(
        *OPSLEDGER, *args,
        env={**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


async def test_stream_verifies_clean(pool: asyncpg.Pool, op_id: str, filled, database_url) -> None:
    async with pool.acquire() as conn:
        report = await verify_operation(conn, op_id)
    assert report.ok, report.to_dict()
    assert report.events == 13
    assert report.recomputed["warrants_executed"] == 2
    assert report.recomputed["mobile_phones_seized"] == 0  # voided
    done = await cli("verify", "--operation", op_id, database_url=database_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "intact" in done.stdout


async def test_updated_payload_is_named_at_its_seq(
    pool: asyncpg.Pool, op_id: str, filled, database_url
) -> None:
    await tamper(
        pool,
        """UPDATE ledger.events SET body = jsonb_set(body::jsonb, '{payload,quantity}', '40')::json
           WHERE operation_id = $1 AND seq = 7""",
        op_id,
    )
    async with pool.acquire() as conn:
        report = await verify_operation(conn, op_id)
    assert report.first_broken_seq == 7
    assert [(d.metric, d.expected, d.actual) for d in report.metric_diffs] == [
        ("weapons_seized", 40, 1)
    ]
    done = await cli("verify", "--operation", op_id, "--json", database_url=database_url)
    assert done.returncode == 1
    assert '"first_broken_seq": 7' in done.stdout


async def test_deleted_row_is_named_by_its_missing_seq(
    pool: asyncpg.Pool, op_id: str, filled
) -> None:
    await tamper(pool, "DELETE FROM ledger.events WHERE operation_id = $1 AND seq = 5", op_id)
    async with pool.acquire() as conn:
        report = await verify_operation(conn, op_id)
    assert report.first_broken_seq == 5
    assert "seq 5 missing" in report.chain_problems[0].reason
    assert [d.metric for d in report.metric_diffs] == ["drug_wraps_seized"]


async def test_inserted_forged_row_is_named_at_its_seq(
    pool: asyncpg.Pool, op_id: str, filled
) -> None:
    await tamper(
        pool,
        """INSERT INTO ledger.events (event_id, operation_id, seq, type, schema_version,
               occurred_at, recorded_at, principal, officer_id, unit, area, body, content_hash,
               prev_hash, hash, kafka_partition, kafka_offset, kafka_index)
           SELECT gen_random_uuid(), operation_id, 14, type, schema_version, occurred_at,
               recorded_at, principal, officer_id, unit, area, body, content_hash, hash,
               md5('forged') || md5('forged'), kafka_partition, kafka_offset, 9
           FROM ledger.events WHERE operation_id = $1 AND seq = 13""",
        op_id,
    )
    async with pool.acquire() as conn:
        report = await verify_operation(conn, op_id)
    assert report.first_broken_seq == 14
    assert not report.chain_intact


async def test_edit_without_disabling_the_trigger_is_refused(
    pool: asyncpg.Pool, op_id: str, filled
) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("DELETE FROM ledger.events WHERE operation_id = $1", op_id)


async def test_projection_row_edited_is_named(pool: asyncpg.Pool, op_id: str, filled) -> None:
    await pool.execute(
        "UPDATE ledger.totals SET value = value + 5 WHERE operation_id = $1"
        " AND metric = 'cash_seized_pence'",
        op_id,
    )
    async with pool.acquire() as conn:
        report = await verify_operation(conn, op_id)
    assert report.chain_intact
    assert [(d.metric, d.expected, d.actual) for d in report.metric_diffs] == [
        ("cash_seized_pence", 1_250_000, 1_250_005)
    ]
    assert len(report.contribution_diffs) == 1  # contributions no longer sum to totals


async def test_unknown_operation_exits_2(database_url: str, unique_id: str) -> None:
    done = await cli("verify", "--operation", f"nothing-{unique_id}", database_url=database_url)
    assert done.returncode == 2


async def _contribution_of_seq(pool: asyncpg.Pool, op_id: str, seq: int) -> str:
    return str(
        await pool.fetchval(
            "SELECT e.event_id FROM ledger.events e JOIN ledger.contributions c"
            " USING (event_id) WHERE e.operation_id = $1 AND e.seq = $2",
            op_id,
            seq,
        )
    )


async def tamper_derived(pool: asyncpg.Pool, sql: str, *args: Any) -> None:
    """A DBA's edit of a derived table with every user trigger off around it."""
    async with pool.acquire() as conn, conn.transaction():
        table = next(
            t for t in ("ledger.voids", "ledger.rollups", "ledger.contributions") if t in sql
        )
        await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        assert (await conn.execute(sql, *args)).endswith(" 1")  # exactly one row edited
        await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


async def test_contribution_moved_to_another_day_is_named(
    pool: asyncpg.Pool, op_id: str, filled, database_url
) -> None:
    event_id = await _contribution_of_seq(pool, op_id, 7)
    await tamper_derived(
        pool,
        "UPDATE ledger.contributions SET day = day + 1 WHERE event_id = $1",
        uuid.UUID(event_id),
    )
    async with pool.acquire() as conn:
        report = await verify_operation(conn, op_id)
    assert report.chain_intact
    assert not report.ok
    assert [(d.table, d.event_id, d.seq) for d in report.derived_diffs] == [
        ("contributions", event_id, 7)
    ]
    assert report.derived_diffs[0].detail.startswith("day 2026-")
    done = await cli("verify", "--operation", op_id, database_url=database_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "(seq 7)" in done.stdout


async def test_contribution_moved_to_another_known_at_instant_is_named(
    pool: asyncpg.Pool, op_id: str, filled, database_url
) -> None:
    """Totals and the per-row sums stay equal: only the row-by-row recomputation sees it."""
    event_id = await _contribution_of_seq(pool, op_id, 4)
    await tamper_derived(
        pool,
        "UPDATE ledger.contributions SET recorded_at = recorded_at + interval '2 hours'"
        " WHERE event_id = $1",
        uuid.UUID(event_id),
    )
    async with pool.acquire() as conn:
        report = await verify_operation(conn, op_id)
    assert report.chain_intact and not report.metric_diffs and not report.row_diffs
    assert not report.contribution_diffs
    assert [(d.table, d.seq) for d in report.derived_diffs] == [("contributions", 4)]
    assert "recorded_at" in report.derived_diffs[0].detail
    done = await cli("verify", "--operation", op_id, "--json", database_url=database_url)
    assert done.returncode == 1
    assert f'"event_id": "{event_id}"' in done.stdout


async def test_void_status_edited_is_named(pool: asyncpg.Pool, op_id: str, filled) -> None:
    void_id = await pool.fetchval(
        "SELECT void_event_id FROM ledger.voids WHERE operation_id = $1 AND applied", op_id
    )
    await tamper_derived(
        pool, "UPDATE ledger.voids SET applied = false WHERE void_event_id = $1", void_id
    )
    async with pool.acquire() as conn:
        report = await verify_operation(conn, op_id)
    assert [(d.table, d.event_id) for d in report.derived_diffs] == [("voids", str(void_id))]
    assert "stored held" in report.derived_diffs[0].detail
    assert "chain says applied" in report.derived_diffs[0].detail


async def test_rollup_row_edited_is_named(
    pool: asyncpg.Pool, op_id: str, filled, database_url
) -> None:
    """Totals, contributions and voids stay right: only as_of/known_at reads would be wrong,
    and only the rollups' recomputation from the chain sees it."""
    key = await pool.fetchrow(
        "SELECT grain, occurred_bucket, recorded_bucket, metric, detail, area, unit, day, value"
        " FROM ledger.rollups WHERE operation_id = $1 AND grain = 'hour'"
        " AND metric = 'cash_seized_pence'",
        op_id,
    )
    assert key is not None and key["value"] == 1_250_000
    async with pool.acquire() as conn:
        assert (await verify_operation(conn, op_id)).ok  # clean before the edit
    await tamper_derived(
        pool,
        "UPDATE ledger.rollups SET value = value + 7 WHERE operation_id = $1 AND grain = $2"
        " AND occurred_bucket = $3 AND recorded_bucket = $4 AND metric = $5 AND detail = $6"
        " AND area = $7 AND unit = $8 AND day = $9",
        op_id, *(key[c] for c in list(key.keys())[:-1]),
    )  # fmt: skip
    async with pool.acquire() as conn:
        report = await verify_operation(conn, op_id)
    assert report.chain_intact and report.totals_match
    assert not report.ok
    assert [(d.table, d.seq) for d in report.derived_diffs] == [("rollups", None)]
    named = report.derived_diffs[0]
    occurred = key["occurred_bucket"].astimezone(UTC).isoformat()
    assert named.event_id.startswith(f"hour occurred {occurred} recorded ")
    assert "cash_seized_pence/" in named.event_id
    assert named.detail == "value 1250007 (chain's contributions sum to 1250000)"
    done = await cli("verify", "--operation", op_id, database_url=database_url)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rollups row of hour occurred" in done.stdout
