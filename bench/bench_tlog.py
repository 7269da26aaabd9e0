"""Transparency log: what the Merkle tree costs the writer per event, and proof latency.

1. ``tree``: the cost of maintaining the tree per event, measured directly: the writer's hook
   (`services.tlog.tree.grow_leaves`: frontier read, nodes inserted) on batches of 1,000 and of
   1 event inside a transaction, and the hashing alone (`merkle.append`); beside it, the batch
   writer on real PostgreSQL with the hook and with it stubbed out, batch by batch alternately
   (on a loaded machine their difference is noisier than the hook's own time).
2. ``proofs``: an operation of 100,000 events (rows generated in SQL, tree grown from their
   bodies), `opsledger serve query` in its own process, and concurrent clients asking random
   inclusion and consistency proofs: p50 / p99 per kind.

Rows are deleted at the end. Run alone with ``python -m bench.bench_tlog``.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import asyncpg
import httpx

from bench.common import new_run_id, percentile, say
from schemas.canonical import canonical_json
from schemas.examples import fresh_event
from services.common.db import create_pool
from services.common.settings import CommonSettings
from services.common.wire import Submission, encode_submission
from services.devtools.procs import ServiceProcess
from services.ledger.writer import BatchWriter
from services.stack.devissuer.tokens import dev_token
from services.tlog import checkpoints, merkle, tree
from services.tlog.keys import Signer

QUICK = os.environ.get("OPSLEDGER_BENCH_QUICK", "") == "1"
BATCHES = 10 if QUICK else 30
BATCH_EVENTS = 1000
PROOF_EVENTS = 20_000 if QUICK else 100_000
READERS = 8
DURATION_S = 3.0 if QUICK else 8.0
TARGET_P99_MS = 50.0

_GENERATE = """
INSERT INTO ledger.events (event_id, operation_id, seq, type, schema_version, occurred_at,
    recorded_at, principal, officer_id, unit, area, body, content_hash, prev_hash, hash,
    kafka_partition, kafka_offset, kafka_index)
SELECT id, $1::text, i, 'arrest_made', 1, now(), now(), 'bench', 'PC1', 'U', 'A',
       jsonb_build_object('event_id', id, 'operation_id', $1::text, 'type', 'arrest_made',
                          'payload', jsonb_build_object('person_ref', 'P-' || i)),
       'x', 'x', 'x', 0, i, 0
FROM (SELECT i, gen_random_uuid() AS id FROM generate_series(1, $2::int) AS i) AS g
"""


def _records(op: str, batches: int, start_offset: int) -> list[list[tuple[int, int, bytes]]]:
    out = []
    for b in range(batches):
        events = [fresh_event(op) for _ in range(BATCH_EVENTS)]
        value = encode_submission(
            Submission(operation_id=op, recorded_at="2026-11-30T01:00:00+00:00",
                       principal="bench", events=events)
        )  # fmt: skip
        out.append([(0, start_offset + b, value)])
    return out


async def _writer_runs(pool: asyncpg.Pool, with_op: str, without_op: str) -> tuple[float, float]:
    """Seconds per event of the writer with the tree hook and with it stubbed out.

    The two alternate batch by batch, so that a change of load on a shared machine falls on
    both alike.
    """

    async def no_tree(*_: Any, **__: Any) -> None:
        return None

    timings = {True: 0.0, False: 0.0}
    runs = {}
    for with_tree, op in ((True, with_op), (False, without_op)):
        group = f"bench-tlog-{op}"
        writer = BatchWriter(pool, topic=group, consumer_group=group, notify=False)
        batches = _records(op, BATCHES, 0)
        await writer.apply_records(batches[0])  # warm-up: creates the head and offsets rows
        runs[with_tree] = (writer, batches[1:])
    for i in range(BATCHES - 1):
        for with_tree in (True, False) if i % 2 else (False, True):
            writer, batches = runs[with_tree]
            started = time.perf_counter()
            if with_tree:
                await writer.apply_records(batches[i])
            else:
                with mock.patch.object(tree, "grow", no_tree):
                    await writer.apply_records(batches[i])
            timings[with_tree] += time.perf_counter() - started
    events = (BATCHES - 1) * BATCH_EVENTS
    return timings[True] / events, timings[False] / events


async def _hook_alone(pool: asyncpg.Pool, op: str, per_batch: int, batches: int) -> float:
    leaves = [canonical_json(fresh_event(op)) for _ in range(per_batch)]
    size = 0
    started = time.perf_counter()
    # One transaction around every call: in the writer the hook runs inside the batch's own.
    async with pool.acquire() as conn, conn.transaction():
        for _ in range(batches):
            await tree.grow_leaves(
                conn, [tree.Leaf(op, size + i + 1, x) for i, x in enumerate(leaves)]
            )
            size += per_batch
    return (time.perf_counter() - started) / (batches * per_batch)


def _hashing_alone(n: int) -> float:
    leaves = [canonical_json(fresh_event("bench-hash")) for _ in range(n)]
    started = time.perf_counter()
    merkle.append(0, [], leaves)
    return (time.perf_counter() - started) / n


async def _forget(pool: asyncpg.Pool, ops: list[str]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for table, trigger in (("ledger.events", "events_append_only"),
                               ("ledger.merkle_nodes", "merkle_nodes_append_only"),
                               ("tlog.checkpoints", "checkpoints_append_only")):  # fmt: skip
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
            await conn.execute(f"DELETE FROM {table} WHERE operation_id = ANY($1)", ops)  # noqa: S608
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
        for table in ("contributions", "voids", "totals", "chain_heads", "conflicts"):
            await conn.execute(f"DELETE FROM ledger.{table} WHERE operation_id = ANY($1)", ops)  # noqa: S608
        await conn.execute(
            "DELETE FROM ledger.consumer_offsets WHERE consumer_group LIKE 'bench-tlog-%'"
        )


async def _prepare_proofs(pool: asyncpg.Pool, op: str) -> list[str]:
    async with pool.acquire() as conn:
        await conn.execute(_GENERATE, op, PROOF_EVENTS)
        await conn.execute(
            "INSERT INTO ledger.chain_heads (operation_id, seq, hash) VALUES ($1, $2, 'x')",
            op, PROOF_EVENTS,
        )  # fmt: skip
        rows = await conn.fetch(
            "SELECT seq, event_id, body FROM ledger.events WHERE operation_id = $1 ORDER BY seq", op
        )
        for at in range(0, len(rows), 10_000):
            async with conn.transaction():
                await tree.grow_leaves(conn, [
                    tree.Leaf(op, r["seq"], canonical_json(r["body"])) for r in rows[at:at + 10_000]
                ])  # fmt: skip
        await checkpoints.issue(conn, op, Signer.generate("bench.local"), "demand")
    return [str(r["event_id"]) for r in rows]


async def _drive(url: str, token: str, op: str, ids: list[str], kind: str) -> dict[str, Any]:
    rng = random.Random(7)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + DURATION_S
    headers = {"Authorization": f"Bearer {token}"}

    async def reader(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            if kind == "inclusion":
                path = f"/v1/operations/{op}/proof/inclusion"
                params = {"event_id": rng.choice(ids)}
            else:
                path = f"/v1/operations/{op}/proof/consistency"
                params = {"from": str(rng.randint(1, PROOF_EVENTS))}
            t0 = time.perf_counter()
            r = await client.get(path, params=params, headers=headers)
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += r.status_code != 200

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(reader(client) for _ in range(READERS)))
    latencies.sort()
    return {
        "requests": len(latencies), "errors": errors, "readers": READERS,
        "per_s": round(len(latencies) / DURATION_S, 1),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }  # fmt: skip


async def _run() -> dict[str, Any]:
    settings = CommonSettings()
    run = new_run_id()
    pool = await create_pool(settings.database_url, max_size=4)
    ops = [f"bench-tlog-{run}-{k}" for k in ("with", "without", "hook", "hook1", "proofs")]
    try:
        say("tlog: writer with and without the tree")
        with_tree, without = await _writer_runs(pool, ops[0], ops[1])
        hook = await _hook_alone(pool, ops[2], BATCH_EVENTS, BATCHES)
        hook_single = await _hook_alone(pool, ops[3], 1, 300)
        hashing = _hashing_alone(20_000)
        say(f"tlog: proofs over an operation of {PROOF_EVENTS:,} events")
        ids = await _prepare_proofs(pool, ops[4])
        env = {"DATABASE_URL": settings.database_url}
        token = dev_token("auditor", subject="bench", ttl_s=3600)
        with (
            tempfile.TemporaryDirectory() as work,
            ServiceProcess("query", env, Path(work), health_path="/readyz") as server,
        ):
            inclusion = await _drive(server.url, token, ops[4], ids, "inclusion")
            consistency = await _drive(server.url, token, ops[4], ids, "consistency")
    finally:
        await _forget(pool, ops)
        await pool.close()
    us = 1e6
    return {
        "tree": {
            # The cost of maintaining the tree: the hook's own work, measured directly.
            "tree_us_per_event": round(hook * us, 2),
            "tree_share_of_writer": round(hook / with_tree, 3),
            "writer_us_per_event_with_tree": round(with_tree * us, 2),
            "writer_us_per_event_without_tree": round(without * us, 2),
            "writer_difference_us_per_event": round((with_tree - without) * us, 2),
            "hook_alone_us_per_event_batch_1": round(hook_single * us, 2),
            "hashing_us_per_event": round(hashing * us, 2),
            "batch_events": BATCH_EVENTS,
            "batches": BATCHES - 1,
        },
        "proofs": {
            "tree_size": PROOF_EVENTS,
            "inclusion": inclusion,
            "consistency": consistency,
            "target_p99_ms": TARGET_P99_MS,
            "meets_target": max(inclusion["p99_ms"], consistency["p99_ms"]) <= TARGET_P99_MS,
        },
    }


def run() -> dict[str, Any]:
    """The figures (a `make bench` component)."""
    return asyncio.run(_run())


if __name__ == "__main__":
    import json

    from bench.common import ensure_stack

    ensure_stack()
    json.dump(run(), sys.stdout, indent=2)
    print()
