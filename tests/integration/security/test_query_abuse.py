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
