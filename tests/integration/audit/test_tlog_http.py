"""Checkpoints, keys and proofs over HTTP, checked with the standalone verifier only.

Every proof is verified against the signed checkpoint in the response (its signature checked
with the key from GET /v1/keys), and the tree is recomputed independently from the events'
bodies read back from the database.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from schemas.canonical import canonical_json
from services.tlog import checkpoints, verifier
from services.tlog.keys import ledger_signer
from services.tlog.settings import TlogSettings
from services.tlog.verifier import (
    VerifierKey,
    leaf_hash,
    open_checkpoint,
    root_of,
    verify_consistency,
    verify_inclusion,
)

from .conftest import Live, forget, operation_events, submissions
from .test_tlog_tamper import forget_tree
from .test_verify_db import cli

pytestmark = pytest.mark.integration


@pytest.fixture
async def two_checkpoints(live: Live, op_id: str) -> AsyncIterator[list[dict[str, Any]]]:
    """The 13 sample events, the ledger having signed sizes 6 and 13."""
    events = operation_events(op_id)
    values = submissions(op_id, events)
    signer = ledger_signer(TlogSettings())
    for part in (values[:2], values[2:]):
        await live.apply_values(part)
        async with live.pool.acquire() as conn:
            await checkpoints.issue(conn, op_id, signer, "demand")
    yield events
    await forget(live.pool, [op_id])
    await forget_tree(live.pool, op_id)


def b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


async def ledger_key(client: httpx.AsyncClient) -> VerifierKey:
    r = await client.get("/v1/keys")  # public: no token
    assert r.status_code == 200
    mine = str(ledger_signer(TlogSettings()).public)
    assert mine in [k["verifier_key"] for k in r.json()["keys"]]
    return VerifierKey.parse(mine)


async def test_checkpoint_latest_and_by_size(
    client: httpx.AsyncClient, auth, op_id: str, two_checkpoints, pool: asyncpg.Pool
) -> None:
    key = await ledger_key(client)
    r = await client.get(f"/v1/operations/{op_id}/checkpoint", headers=auth("supervisor", op_id))
    assert r.status_code == 200, r.text
    latest = open_checkpoint(r.json()["checkpoint"], key, f"{key.name}/{op_id}")
    bodies = await pool.fetch(
        "SELECT body FROM ledger.events WHERE operation_id = $1 ORDER BY seq", op_id
    )
    assert latest.size == 13
    assert latest.root == root_of([leaf_hash(canonical_json(b["body"])) for b in bodies])
    r6 = await client.get(f"/v1/operations/{op_id}/checkpoint", params={"size": 6},
                          headers=auth("auditor"))  # fmt: skip
    assert open_checkpoint(r6.json()["checkpoint"], key).size == 6
    missing = await client.get(f"/v1/operations/{op_id}/checkpoint", params={"size": 7},
                               headers=auth("auditor"))  # fmt: skip
    assert missing.status_code == 404
    assert "no checkpoint of size 7" in missing.json()["detail"]
    other = await client.get(f"/v1/operations/{op_id}/checkpoint",
                             headers=auth("supervisor", "another-op"))  # fmt: skip
    assert other.status_code == 403


async def test_inclusion_proof_of_every_event_verifies(
    client: httpx.AsyncClient, auth, op_id: str, two_checkpoints, pool: asyncpg.Pool
) -> None:
    key = await ledger_key(client)
    for seq, event in enumerate(two_checkpoints, start=1):
        r = await client.get(
            f"/v1/operations/{op_id}/proof/inclusion",
            params={"event_id": event["event_id"]},
            headers=auth("auditor", subject="auditor-7"),
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        cp = open_checkpoint(doc["checkpoint"], key, f"{key.name}/{op_id}")
        assert (doc["leaf_index"], cp.size) == (seq - 1, 13)
        assert json.loads(doc["leaf"])["event_id"] == event["event_id"]
        leaf = leaf_hash(doc["leaf"].encode())
        verify_inclusion(doc["leaf_index"], cp.size, leaf, b64(doc["proof"]), cp.root)
    # At the older size: leaf 3 is in the tree of 6, leaf 9 is not.
    r = await client.get(f"/v1/operations/{op_id}/proof/inclusion",
                         params={"event_id": two_checkpoints[2]["event_id"], "size": 6},
                         headers=auth("auditor"))  # fmt: skip
    doc = r.json()
    cp6 = open_checkpoint(doc["checkpoint"], key)
    verify_inclusion(2, 6, leaf_hash(doc["leaf"].encode()), b64(doc["proof"]), cp6.root)
    late = await client.get(f"/v1/operations/{op_id}/proof/inclusion",
                            params={"event_id": two_checkpoints[9]["event_id"], "size": 6},
                            headers=auth("auditor"))  # fmt: skip
    assert late.status_code == 422
    # Event content: auditors only, and the read is in the access log.
    denied = await client.get(f"/v1/operations/{op_id}/proof/inclusion",
                              params={"event_id": two_checkpoints[0]["event_id"]},
                              headers=auth("supervisor", op_id))  # fmt: skip
    assert denied.status_code == 403
    logged = await pool.fetchval(
        "SELECT count(*) FROM audit.access_log WHERE action = 'proof_inclusion'"
        " AND operation_id = $1 AND principal = 'auditor-7'",
        op_id,
    )
    assert logged == 13


async def test_consistency_proof_between_the_two_checkpoints(
    client: httpx.AsyncClient, auth, op_id: str, two_checkpoints
) -> None:
    key = await ledger_key(client)
    r = await client.get(f"/v1/operations/{op_id}/proof/consistency", params={"from": 6},
                         headers=auth("supervisor", op_id))  # fmt: skip
    assert r.status_code == 200, r.text
    doc = r.json()
    old = open_checkpoint(doc["from_checkpoint"], key)
    new = open_checkpoint(doc["to_checkpoint"], key)
    assert (old.size, new.size) == (6, 13)
    verify_consistency(6, 13, b64(doc["proof"]), old.root, new.root)
    bad = await client.get(f"/v1/operations/{op_id}/proof/consistency",
                           params={"from": 14, "to": 13}, headers=auth("auditor"))  # fmt: skip
    assert bad.status_code == 422


async def test_prove_writes_a_file_the_standalone_verifier_accepts(
    client: httpx.AsyncClient, auth, op_id: str, two_checkpoints, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    out = tmp_path / "arrests.json"
    done = await cli("prove", "--operation", op_id, "--metric", "arrests", "-o", str(out),
                     database_url=database_url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    totals = await client.get(f"/v1/operations/{op_id}/totals", headers=auth("auditor"))
    assert doc["figure"] == totals.json()["metrics"]["arrests"] > 0
    key = tmp_path / "ledger.vkey"
    key.write_text(doc["public_key"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, verifier.__file__, str(out), "--public-key", str(key),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    assert f"arrests = {doc['figure']}" in stdout.decode()
    # The press release carries the same signed checkpoint and says how to prove each figure.
    summary = await client.get(f"/v1/operations/{op_id}/summary", headers=auth("auditor"))
    assert doc["checkpoint"].splitlines()[2] in summary.text
    assert f"opsledger prove --operation {op_id} --metric arrests" in summary.text
    as_json = await client.get(f"/v1/operations/{op_id}/summary", params={"format": "json"},
                               headers=auth("auditor"))  # fmt: skip
    assert as_json.json()["checkpoint"]["checkpoint"] == doc["checkpoint"]
    assert as_json.json()["metrics"]["arrests"] == doc["figure"]


async def test_witness_cosigns_growth_and_refuses_a_fork(
    live: Live, op_id: str, two_checkpoints, query_url: str, auth, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    from .test_tlog_tamper import rewrite

    vkey = tmp_path / "ledger.vkey"
    vkey.write_text(str(ledger_signer(TlogSettings()).public))
    state = tmp_path / "witness"
    token = auth("auditor")["Authorization"].removeprefix("Bearer ")

    async def witness() -> Any:
        return await cli(
            "witness", "--url", query_url, "--operation", op_id, "--ledger-key", str(vkey),
            "--key", str(tmp_path / "witness.key"), "--state", str(state), "--once",
            "--name", "witness.test", database_url=database_url, OPSLEDGER_WITNESS_TOKEN=token,
        )  # fmt: skip

    signer = ledger_signer(TlogSettings())
    first = await witness()
    assert first.returncode == 0, first.stderr
    assert "first checkpoint, cosigned (size 13)" in first.stdout
    extra = operation_events(op_id)[:3]
    await live.apply_values(submissions(op_id, extra))
    async with live.pool.acquire() as conn:
        await checkpoints.issue(conn, op_id, signer, "interval")
    second = await witness()
    assert second.returncode == 0, second.stderr
    assert "13 -> 16, cosigned" in second.stdout
    kept = (state / f"{op_id}.checkpoint").read_text()
    assert kept.count("\u2014 ") == 2  # the ledger's signature and the witness's

    # A ledger that rewrote seq 2 (tree included), hid its old checkpoints and signed anew.
    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[1] = {**rows[1], "body": {**rows[1]["body"], "source": {"device_id": "forged"}}}
        return rows

    await rewrite(live.pool, op_id, edit, tree_too=True)
    await forget_checkpoints(live.pool, op_id)
    await live.apply_values(submissions(op_id, operation_events(op_id)[:3]))
    async with live.pool.acquire() as conn:
        forged = await checkpoints.issue(conn, op_id, signer, "interval")
    assert forged is not None and forged.size == 19
    third = await witness()
    assert third.returncode == 1
    assert "FORK DETECTED" in third.stderr and "not consistent with size 16" in third.stderr
    assert (state / f"{op_id}.checkpoint").read_text() == kept  # nothing new cosigned
    evidence = json.loads((state / f"{op_id}.fork.json").read_text())
    assert evidence["kept"] == kept and evidence["offered"] == forged.note


async def forget_checkpoints(pool: asyncpg.Pool, op_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE tlog.checkpoints DISABLE TRIGGER checkpoints_append_only")
        await conn.execute("DELETE FROM tlog.checkpoints WHERE operation_id = $1", op_id)
        await conn.execute("ALTER TABLE tlog.checkpoints ENABLE TRIGGER checkpoints_append_only")
