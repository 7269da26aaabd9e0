"""Export from the real ledger, then verify the bundle offline; a one-byte edit fails it."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import asyncpg
import pytest

from services.audit.export import verify_bundle

from .test_verify_db import CLI_SUBJECT, cli

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_export_then_offline_verify_round_trips(
    pool: asyncpg.Pool, op_id: str, filled, database_url: str, tmp_path: Path, fmt: str
) -> None:
    bundle = tmp_path / f"{op_id}.tar"
    done = await cli(
        "export",
        "--operation",
        op_id,
        "--format",
        fmt,
        "-o",
        str(bundle),
        database_url=database_url,
    )
    assert done.returncode == 0, done.stderr
    with tarfile.open(bundle) as tar:
        names = {"manifest.json", "events.jsonl"} | ({"events.csv"} if fmt == "csv" else set())
        assert set(tar.getnames()) == names | {"checkpoint", "leaves.jsonl"}
    key = tmp_path / "ledger.vkey"
    assert (await cli("keys", "public", "-o", str(key), database_url=database_url)).returncode == 0
    ok = await cli(
        "verify", "--export", str(bundle), "--public-key", str(key),
        database_url="postgresql://nowhere:1/none",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr  # offline: a dead DSN does not matter
    assert "13 events are exactly the leaves of" in ok.stdout

    bundle_sha256 = hashlib.sha256(bundle.read_bytes()).hexdigest()
    raw = bytearray(bundle.read_bytes())
    at = raw.index(b"machete")
    raw[at] = ord("M")
    bundle.write_bytes(bytes(raw))
    bad = await cli("verify", "--export", str(bundle), database_url="postgresql://nowhere:1/none")
    assert bad.returncode == 1
    assert "SHA-256" in bad.stdout

    row = await pool.fetchrow(
        "SELECT principal, role, params FROM audit.access_log"
        " WHERE action = 'export' AND operation_id = $1",
        op_id,
    )
    assert row is not None
    assert (row["principal"], row["role"]) == (CLI_SUBJECT, "auditor")
    # the disclosure: what range went out, in which format, and the hash of the file handed over
    assert row["params"]["format"] == fmt
    assert row["params"]["bundle_sha256"] == bundle_sha256
    assert (row["params"]["first_seq"], row["params"]["last_seq"]) == (1, 13)
    assert row["params"]["events"] == 13


async def test_known_at_export_carries_the_totals_as_briefed(
    op_id: str, filled, database_url: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "briefed.tar"
    # submissions are recorded a minute apart from 08:00: by 08:01:30 the first 6 events
    done = await cli(
        "export", "--operation", op_id, "--known-at", "2026-11-23T08:01:30Z", "-o", str(bundle),
        database_url=database_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = verify_bundle(bundle)
    assert report.ok, report.to_dict()
    assert report.verify is not None and report.verify.events == 6
    assert report.verify.recomputed["warrants_executed"] == 2
    assert report.verify.recomputed["cash_seized_pence"] == 0


async def test_export_of_an_unknown_operation_writes_nothing_and_fails(
    database_url: str, tmp_path: Path
) -> None:
    """An empty bundle would verify as intact: a mistyped id must be noticed, not certified."""
    bundle = tmp_path / "never.tar"
    done = await cli(
        "export", "--operation", "never-recorded-op", "-o", str(bundle), database_url=database_url
    )
    assert done.returncode == 2
    assert "never-recorded-op" in done.stdout + done.stderr
    assert not bundle.exists()
