"""Who may read what, and the precise 4xx for bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from services.common import access_log

from .ledger import Ledger, make_event

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
READS = ["totals", "summary"]


@pytest.fixture
async def op(ledger: Ledger, op_id: str) -> str:
    await ledger.submit([make_event(op_id, "warrant_executed", T0)], T0)
    return op_id


@pytest.mark.parametrize("read", READS)
async def test_role_matrix(client: httpx.AsyncClient, op: str, token, read: str) -> None:
    url = f"/v1/operations/{op}/{read}"
    cases = [
        ({}, 401),
        ({"Authorization": "Bearer not-a-jwt"}, 401),
        (token("field", op), 403),
        (token("supervisor", "some-other-op"), 403),
        (token("supervisor", op), 200),
        (token("auditor"), 200),
        (token("admin"), 200),
    ]
    for headers, status in cases:
        r = await client.get(url, headers=headers)
        assert r.status_code == status, (headers, r.text)
        if status != 200:
            assert r.headers["content-type"] == "application/problem+json"


async def test_operations_listing_roles(client: httpx.AsyncClient, op: str, token) -> None:
    assert (await client.get("/v1/operations")).status_code == 401
    assert (await client.get("/v1/operations", headers=token("field", op))).status_code == 403
    r = await client.get("/v1/operations", headers=token("supervisor", "nothing-here"))
    assert r.status_code == 200 and r.json()["operations"] == []


async def test_auditor_reads_are_logged(
    client: httpx.AsyncClient, op: str, token, ledger: Ledger
) -> None:
    r = await client.get(f"/v1/operations/{op}/totals?group_by=area", headers=token("auditor"))
    assert r.status_code == 200
    row = await ledger.writer.pool.fetchrow(
        "SELECT role, action, params FROM audit.access_log WHERE operation_id = $1 "
        "ORDER BY id DESC LIMIT 1",
        op,
    )
    assert row is not None and (row["role"], row["action"]) == ("auditor", "totals")
    assert row["params"]["group_by"] == ["area"]


async def test_concurrent_auditor_reads_are_each_logged_on_one_intact_chain(
    client: httpx.AsyncClient, op: str, token, ledger: Ledger
) -> None:
    """Thirty auditors at once: thirty rows (one per read, each with its own parameters), on
    consecutive links of the one chain, however the process gathered their appends."""
    pool = ledger.writer.pool
    before = await pool.fetchval("SELECT seq FROM audit.access_log_head")
    headers = token("auditor")
    answers = await asyncio.gather(
        *(
            client.get(
                f"/v1/operations/{op}/totals",
                params={"as_of": f"2026-11-17T09:{n:02d}:00Z"},
                headers=headers,
            )
            for n in range(30)
        )
    )
    assert [r.status_code for r in answers] == [200] * 30
    rows = await pool.fetch(
        "SELECT seq, at, params FROM audit.access_log WHERE operation_id = $1 AND action = 'totals'"
        " AND seq > $2 ORDER BY seq",
        op,
        before,
    )
    assert sorted(r["params"]["as_of"] for r in rows) == sorted(
        f"2026-11-17T09:{n:02d}:00+00:00" for n in range(30)
    )
    async with pool.acquire() as conn:
        report = await access_log.verify_chain(conn)
    assert report.ok, report.problems
    # gathered: fewer commits than reads (rows of one append share the time its lock was taken)
    assert len({r["at"] for r in rows}) < 30


async def test_unknown_operation_is_404(client: httpx.AsyncClient, token) -> None:
    for read in [*READS, "stream"]:
        r = await client.get(f"/v1/operations/never-seen-op/{read}", headers=token("auditor"))
        assert r.status_code == 404, (read, r.text)
        assert r.json()["title"] == "Unknown operation"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"as_of": "last tuesday"}, "as_of"),
        ({"known_at": "2026-11-17T09:00:00"}, "known_at"),
        ({"group_by": "officer"}, "group_by"),
    ],
)
async def test_bad_parameters_are_422_naming_them(
    client: httpx.AsyncClient, op: str, token, params: dict[str, str], name: str
) -> None:
    for read in [*READS, "stream"]:
        r = await client.get(f"/v1/operations/{op}/{read}", params=params, headers=token("auditor"))
        assert r.status_code == 422, (read, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert [e["path"] for e in r.json()["errors"]] == [name]


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    assert ready.json()["live_updates"] is True
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "opsledger_query_requests_total" in metrics.text
    assert "opsledger_query_listener_up 1.0" in metrics.text
