"""Hostile operation ids in query paths: a 4xx or empty answer, never a 500 or a forged header."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

from .conftest import World, credentials

pytestmark = pytest.mark.integration

HOSTILE_IDS = [
    "\u00e9t\u00e9-2026",
    "op\r\nSet-Cookie: stolen=1",
    'op"; filename="x.sh',
    "\U0001f4a5",
]


@pytest.mark.parametrize("op", HOSTILE_IDS, ids=["non-latin1", "crlf", "quote", "emoji"])
@pytest.mark.parametrize("route", ["totals", "summary", "events", "verify", "export"])
async def test_hostile_operation_id_in_path(
    world: World, query: httpx.AsyncClient, op: str, route: str
) -> None:
    headers = {"Authorization": f"Bearer {credentials(world)['auditor']}"}
    resp = await query.get(f"/v1/operations/{quote(op, safe='')}/{route}", headers=headers)
    assert resp.status_code in (200, 404, 422), (resp.status_code, resp.text[:300])
    assert "set-cookie" not in resp.headers
    disposition = resp.headers.get("content-disposition", "")
    assert "\r" not in disposition and "\n" not in disposition and "x.sh" not in disposition


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/audit/access-log", {"before_id": str(2**100)}),
        ("/v1/audit/access-log", {"principal": "nul\x00byte"}),
        ("/v1/audit/access-log", {"action": "nul\x00byte"}),
        ("/v1/operations/{op}/events", {"after_seq": str(2**100)}),
        ("/v1/operations/{op}/events", {"officer": "nul\x00byte"}),
    ],
    ids=["huge-cursor", "nul-principal", "nul-action", "huge-seq", "nul-officer"],
)
async def test_values_postgres_cannot_take_are_422_not_500(
    world: World, query: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    """Found by schemathesis: a cursor past bigint reached PostgreSQL and came back a 500."""
    headers = {"Authorization": f"Bearer {credentials(world)['auditor']}"}
    resp = await query.get(path.format(op=world.op), params=params, headers=headers)
    assert resp.status_code == 422, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"] == "application/problem+json"
