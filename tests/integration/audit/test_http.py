"""The audit routes of the query service: history, verify, export, access log; roles; logging."""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.audit.export import verify_bundle

from .conftest import forget, operation_events, submissions

pytestmark = pytest.mark.integration


async def _all_pages(client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any):
    pages, cursor = [], 0
    while cursor is not None:
        r = await client.get(url, params={**params, "after_seq": cursor}, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([e["seq"] for e in body["events"]])
        cursor = body["next_after_seq"]
    return pages


async def test_history_in_chain_order_with_cursor_pages(
    client: httpx.AsyncClient, auth, op_id: str, filled
) -> None:
    headers = auth("auditor")
    url = f"/v1/operations/{op_id}/events"
    assert await _all_pages(client, url, headers, limit=5) == [
        [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13]
    ]  # fmt: skip
    r = await client.get(url, headers=headers)
    events = r.json()["events"]
    first = events[0]
    assert first["seq"] == 1 and first["prev_hash"] == "0" * 64 and len(first["hash"]) == 64
    assert first["principal"] == "field-officer-1"
    assert (first["kafka_partition"], first["kafka_offset"], first["kafka_index"]) == (0, 0, 0)
    assert first["recorded_at"].startswith("2026-11-23T08:00:00")
    voided = [e for e in events if e["voided"]]
    assert [e["type"] for e in voided] == ["item_seized"]
    assert voided[0]["body"]["payload"]["item"] == "mobile_phone"
    assert voided[0]["voided_by"] == filled[12]["event_id"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"type": "item_seized"}, [5, 6, 7, 8, 9]),
        ({"area": "Oxfordshire"}, [2]),
        ({"officer": "PC4103"}, [3]),
        ({"unit": "nowhere"}, []),
        ({"from": "2026-11-20T00:00:00Z"}, [4, 9]),
        ({"from": "2026-11-16T00:00:00Z", "to": "2026-11-16T23:59:59Z"}, [10]),
    ],
)
async def test_history_filters(
    client: httpx.AsyncClient, auth, op_id: str, filled, params, expected
) -> None:
    r = await client.get(f"/v1/operations/{op_id}/events", params=params, headers=auth("auditor"))
    assert r.status_code == 200, r.text
    assert [e["seq"] for e in r.json()["events"]] == expected


@pytest.mark.parametrize(
    ("role", "status"), [("supervisor", 403), ("field", 403), ("admin", 200), (None, 401)]
)
async def test_only_auditors_and_admins_read_history(
    client: httpx.AsyncClient, auth, op_id: str, filled, role, status
) -> None:
    headers = auth(role, op_id) if role else {}
    for path in ("events", "verify"):
        r = await client.get(f"/v1/operations/{op_id}/{path}", headers=headers)
        assert r.status_code == status, r.text
    r = await client.get("/v1/audit/access-log", headers=headers)
    assert r.status_code == status


async def test_limit_is_bounded_and_times_are_checked(
    client: httpx.AsyncClient, auth, op_id: str
) -> None:
    url = f"/v1/operations/{op_id}/events"
    assert (
        await client.get(url, params={"limit": 1001}, headers=auth("auditor"))
    ).status_code == 422
    r = await client.get(url, params={"from": "yesterday"}, headers=auth("auditor"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "from"


async def test_verify_endpoint(client: httpx.AsyncClient, auth, op_id: str, filled) -> None:
    r = await client.get(f"/v1/operations/{op_id}/verify", headers=auth("auditor"))
    body = r.json()
    assert body["ok"] is True and body["events"] == 13
    assert body["chain"]["first_broken_seq"] is None
    assert body["totals"]["recomputed"]["arrests"] == 2


async def test_export_endpoint_bundle_verifies_offline(
    client: httpx.AsyncClient, auth, op_id: str, filled, tmp_path: Path
) -> None:
    r = await client.get(
        f"/v1/operations/{op_id}/export", params={"format": "csv"}, headers=auth("auditor")
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        assert "events.csv" in tar.getnames()
    path = tmp_path / "b.tar"
    path.write_bytes(r.content)
    assert verify_bundle(path).ok


async def test_csv_export_is_spreadsheet_safe_and_its_disclosure_logged_with_its_hash(
    client: httpx.AsyncClient,
    auth,
    pool: asyncpg.Pool,
    live,
    op_id: str,
    unique_id: str,
    tmp_path: Path,
) -> None:
    """A field-typed formula reaches the bundle as text in events.csv and exactly in
    events.jsonl; the access log names who took which range and the SHA-256 of what left."""
    events = operation_events(op_id)
    events[0]["actor"]["unit"] = '=HYPERLINK("http://evil.example","x")'
    events[1]["location"]["area"] = "@SUM(1+1)"
    await live.apply_values(submissions(op_id, events))
    try:
        who = f"auditor-{unique_id}"
        r = await client.get(
            f"/v1/operations/{op_id}/export", params={"format": "csv"},
            headers=auth("auditor", subject=who),
        )  # fmt: skip
        assert r.status_code == 200, r.text
        with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
            sheet = tar.extractfile("events.csv").read().decode()  # type: ignore[union-attr]
            exact = tar.extractfile("events.jsonl").read().decode()  # type: ignore[union-attr]
        cells = [c for row in csv.reader(io.StringIO(sheet, newline="")) for c in row]
        assert '\'=HYPERLINK("http://evil.example","x")' in cells and "'@SUM(1+1)" in cells
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert '"unit":"=HYPERLINK(\\"http://evil.example\\",\\"x\\")"' in exact
        path = tmp_path / "b.tar"
        path.write_bytes(r.content)
        assert verify_bundle(path).ok
        row = await pool.fetchrow(
            "SELECT params FROM audit.access_log WHERE principal = $1 AND action = 'export'", who
        )
        assert row is not None
        params = row["params"]
        assert params["bundle_sha256"] == hashlib.sha256(r.content).hexdigest()
        assert (params["format"], params["first_seq"], params["last_seq"]) == ("csv", 1, 13)
    finally:
        await forget(pool, [op_id])


async def test_every_auditor_call_leaves_an_access_log_row(
    client: httpx.AsyncClient, auth, pool: asyncpg.Pool, op_id: str, unique_id: str, filled
) -> None:
    who = f"auditor-{unique_id}"
    headers = auth("auditor", subject=who)
    base = f"/v1/operations/{op_id}"
    await client.get(f"{base}/events", params={"type": "arrest_made", "limit": 7}, headers=headers)
    await client.get(f"{base}/verify", headers=headers)
    await client.get(f"{base}/export", params={"format": "jsonl"}, headers=headers)
    r = await client.get("/v1/audit/access-log", params={"principal": who}, headers=headers)
    assert r.status_code == 200
    entries = r.json()["entries"]
    # newest first; the listing itself is logged before it reads, so it lists itself
    assert [(e["action"], e["operation_id"]) for e in entries] == [
        ("access_log", None), ("export", op_id), ("verify", op_id), ("history", op_id)
    ]  # fmt: skip
    assert entries[-1]["params"] == {"after_seq": 0, "limit": 7, "type": "arrest_made"}
    assert all(e["role"] == "auditor" for e in entries)
    # and the rows are in the table itself, not only in the answer
    n = await pool.fetchval("SELECT count(*) FROM audit.access_log WHERE principal = $1", who)
    assert n == 4


async def test_export_of_an_unknown_operation_is_404(client: httpx.AsyncClient, auth) -> None:
    resp = await client.get("/v1/operations/never-recorded-op/export", headers=auth("auditor"))
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
