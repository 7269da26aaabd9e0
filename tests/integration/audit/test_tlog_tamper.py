"""A DBA who rewrites history carefully: the chain verifies, a kept checkpoint does not.

Real stack: events written by the aggregator's writer (which grows the Merkle tree in the same
transaction), checkpoints signed with the ledger's development key, the real console commands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from schemas.canonical import GENESIS_HASH, canonical_json, chain_hash
from services.tlog import checkpoints, tree
from services.tlog.keys import ledger_signer
from services.tlog.settings import TlogSettings

from .conftest import Live, forget, operation_events, submissions
from .test_verify_db import cli

pytestmark = pytest.mark.integration


async def forget_tree(pool: asyncpg.Pool, operation_id: str) -> None:
    """Remove a test operation's tree and checkpoints (append-only: triggers off for this)."""
    async with pool.acquire() as conn, conn.transaction():
        for table, trigger in (
            ("ledger.merkle_nodes", "merkle_nodes_append_only"),
            ("tlog.checkpoints", "checkpoints_append_only"),
        ):
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
            await conn.execute(f"DELETE FROM {table} WHERE operation_id = $1", operation_id)  # noqa: S608
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")


@pytest.fixture
async def signed(live: Live, op_id: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The 13 sample events applied 3 per batch, the ledger signing a checkpoint after each."""
    events = operation_events(op_id)
    signer = ledger_signer(TlogSettings())
    for value in submissions(op_id, events):
        await live.apply_values([value])
        async with live.pool.acquire() as conn:
            await checkpoints.issue(conn, op_id, signer, "interval")
    yield events
    await forget(live.pool, [op_id])
    await forget_tree(live.pool, op_id)


async def rewrite(
    pool: asyncpg.Pool,
    op_id: str,
    change: Any,
    *,
    tree_too: bool = False,
) -> None:
    """Triggers off; ``change(rows) -> rows``; then every seq, prev_hash, hash and the head."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE ledger.events DISABLE TRIGGER events_append_only")
        rows = [dict(r) for r in await conn.fetch(
            "SELECT event_id, seq, body FROM ledger.events WHERE operation_id = $1 ORDER BY seq",
            op_id,
        )]  # fmt: skip
        await conn.execute("DELETE FROM ledger.events WHERE operation_id = $1", op_id)
        prev = GENESIS_HASH
        new_rows = change(rows)
        for seq, row in enumerate(new_rows, start=1):
            digest = chain_hash(row["body"], prev)
            body = row["body"]
            await conn.execute(
                """INSERT INTO ledger.events (event_id, operation_id, seq, type, schema_version,
                   occurred_at, recorded_at, principal, officer_id, unit, area, body,
                   content_hash, prev_hash, hash, kafka_partition, kafka_offset, kafka_index)
                   VALUES ($1, $2, $3, $4, 1, $5::text::timestamptz, $6::text::timestamptz, $7,
                           $8, $9, $10, $11::jsonb, 'x', $12, $13, 0, $3, 0)""",
                row["event_id"], op_id, seq, body["type"], body["occurred_at"],
                body["recorded_at"], body["principal"], body["actor"]["officer_id"],
                body["actor"]["unit"], body["location"]["area"],
                body, prev, digest,
            )  # fmt: skip
            prev = digest
        await conn.execute(
            "UPDATE ledger.chain_heads SET seq = $2, hash = $3 WHERE operation_id = $1",
            op_id, len(new_rows), prev,
        )  # fmt: skip
        await conn.execute("ALTER TABLE ledger.events ENABLE TRIGGER events_append_only")
        if tree_too:  # the most careful rewriter recomputes the stored Merkle tree as well
            await conn.execute(
                "ALTER TABLE ledger.merkle_nodes DISABLE TRIGGER merkle_nodes_append_only"
            )
            await conn.execute("DELETE FROM ledger.merkle_nodes WHERE operation_id = $1", op_id)
            await tree.grow_leaves(conn, [
                tree.Leaf(op_id, i, canonical_json(r["body"]))
                for i, r in enumerate(new_rows, start=1)
            ])  # fmt: skip
            await conn.execute(
                "ALTER TABLE ledger.merkle_nodes ENABLE TRIGGER merkle_nodes_append_only"
            )


def payload_edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seq 5's payload changed to something the tally does not count (a reference)."""
    body = dict(rows[4]["body"])
    body["source"] = {**body["source"], "device_id": "tablet-FORGED"}
    rows[4] = {**rows[4], "body": body}
    return rows


async def keep_checkpoint(op_id: str, tmp_path: Path, database_url: str) -> Path:
    kept = tmp_path / "kept.checkpoint"
    done = await cli("checkpoint", "--operation", op_id, "-o", str(kept),
                     database_url=database_url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert kept.read_text().split("\n")[1] == "13"
    return kept


async def test_intact_ledger_is_consistent_with_the_kept_checkpoint(
    op_id: str, signed, database_url: str, tmp_path: Path
) -> None:
    kept = await keep_checkpoint(op_id, tmp_path, database_url)
    done = await cli("verify", "--operation", op_id, "--checkpoint", str(kept),
                     database_url=database_url)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "consistent" in done.stdout and "13 events" in done.stdout


async def test_careful_rewrite_passes_verify_but_not_the_kept_checkpoint(
    pool: asyncpg.Pool, op_id: str, signed, database_url: str, tmp_path: Path
) -> None:
    kept = await keep_checkpoint(op_id, tmp_path, database_url)
    fifth = await pool.fetchval(
        "SELECT event_id FROM ledger.events WHERE operation_id = $1 AND seq = 5", op_id
    )
    await rewrite(pool, op_id, payload_edit)
    plain = await cli("verify", "--operation", op_id, database_url=database_url)
    assert plain.returncode == 0, plain.stdout  # every hash and the head were recomputed
    done = await cli("verify", "--operation", op_id, "--checkpoint", str(kept), "--json",
                     database_url=database_url)  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    both = orjson.loads(done.stdout)
    assert both["ok"] is False and both["operations"][0]["ok"] is True  # the chain: intact
    report = both["checkpoint"]
    assert report["ok"] is False
    assert report["first_differing_seq"] == 5
    assert report["first_differing_event"] == str(fifth)
    text = await cli("verify", "--operation", op_id, "--checkpoint", str(kept),
                     database_url=database_url)  # fmt: skip
    assert f"first differing leaf: seq 5 (event {fifth})" in text.stdout


async def test_rewrite_of_the_tree_too_is_caught_between_two_signed_checkpoints(
    pool: asyncpg.Pool, op_id: str, signed, database_url: str, tmp_path: Path
) -> None:
    kept = await keep_checkpoint(op_id, tmp_path, database_url)
    await rewrite(pool, op_id, payload_edit, tree_too=True)
    done = await cli("verify", "--operation", op_id, "--checkpoint", str(kept), "--json",
                     database_url=database_url)  # fmt: skip
    assert done.returncode == 1
    report = orjson.loads(done.stdout)["checkpoint"]
    # The ledger signed sizes 3, 6, 9, 12, 13: size 3 still agrees, size 6 no longer does.
    assert report["window"] == [4, 6]
    # ... and the ledger refuses to sign any new size of the rewritten tree.
    async with pool.acquire() as conn:
        with pytest.raises(checkpoints.ForkRefused, match="signed at size 9"):
            await checkpoints.issue(conn, op_id, ledger_signer(TlogSettings()), "demand", size=10)


async def test_a_removed_event_is_named(
    pool: asyncpg.Pool, op_id: str, signed, database_url: str, tmp_path: Path
) -> None:
    kept = await keep_checkpoint(op_id, tmp_path, database_url)
    await rewrite(pool, op_id, lambda rows: rows[:6] + rows[7:])  # seq 7 gone, the rest renumbered
    done = await cli("verify", "--operation", op_id, "--checkpoint", str(kept), "--json",
                     database_url=database_url)  # fmt: skip
    assert done.returncode == 1
    assert orjson.loads(done.stdout)["checkpoint"]["first_differing_seq"] == 7


async def test_an_appended_forged_event_is_named(
    pool: asyncpg.Pool, op_id: str, signed, database_url: str, tmp_path: Path
) -> None:
    kept = await keep_checkpoint(op_id, tmp_path, database_url)

    def append_forged(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        forged = {**rows[0]["body"], "event_id": "00000000-0000-4000-8000-00000000f0f0"}
        return [*rows, {"event_id": forged["event_id"], "body": forged}]

    await rewrite(pool, op_id, append_forged, tree_too=True)
    done = await cli("verify", "--operation", op_id, "--checkpoint", str(kept), "--json",
                     database_url=database_url)  # fmt: skip
    assert done.returncode == 1
    report = orjson.loads(done.stdout)["checkpoint"]
    assert report["first_differing_seq"] == 14
    assert report["first_differing_event"] == "00000000-0000-4000-8000-00000000f0f0"
    assert "covered by no checkpoint" in report["problems"][0]


async def test_the_migration_backfills_the_same_tree_the_writer_grew(
    pool: asyncpg.Pool, op_id: str, signed
) -> None:
    import importlib

    migration = importlib.import_module("services.common.migrations.versions.0005_tlog")
    query = "SELECT level, idx, hash FROM ledger.merkle_nodes WHERE operation_id = $1 ORDER BY 1, 2"
    grown = [tuple(r) for r in await pool.fetch(query, op_id)]
    assert len(grown) == 13 + 6 + 3 + 1  # the complete subtrees of 13 leaves, level by level
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "ALTER TABLE ledger.merkle_nodes DISABLE TRIGGER merkle_nodes_append_only"
        )
        await conn.execute("DELETE FROM ledger.merkle_nodes WHERE operation_id = $1", op_id)
        await conn.execute(
            "ALTER TABLE ledger.merkle_nodes ENABLE TRIGGER merkle_nodes_append_only"
        )
        await migration.backfill(conn, [op_id])  # as `opsledger migrate` does for every operation
    assert [tuple(r) for r in await pool.fetch(query, op_id)] == grown
