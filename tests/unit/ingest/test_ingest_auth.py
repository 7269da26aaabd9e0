"""Token checks of the write endpoints over HTTP (the cache itself: tests/unit/common)."""

from __future__ import annotations

import time

import httpx

from services.ingest.settings import IngestSettings
from services.stack.devissuer.keys import claims_for, load_or_create
from services.stack.settings import StackSettings

from .conftest import make_event


async def test_expired_token_is_401_with_www_authenticate(
    client: httpx.AsyncClient, settings: IngestSettings, op: str
) -> None:
    stack = StackSettings()
    claims = claims_for(
        issuer=stack.issuer_url, audience="opsledger", role="field", operations=[op],
        ttl_s=60, now=time.time() - 3600,
    )  # fmt: skip
    expired = load_or_create(stack.issuer_dir).sign(claims)
    r = await client.post(
        "/v1/events", json=make_event(op), headers={"Authorization": f"Bearer {expired}"}
    )
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["detail"] == "token expired"


async def test_other_methods_and_paths_still_get_problem_answers(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/v1/events")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.post("/v1/nowhere", json={})
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
