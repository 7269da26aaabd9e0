"""Token checks of the write endpoints over HTTP (the cache itself: tests/unit/common)."""

from __future__ import annotations

import time

import httpx
import jwt

from services.common.auth import issue_token
from services.ingest.settings import IngestSettings

from .conftest import make_event


async def test_expired_token_is_401_with_www_authenticate(
    client: httpx.AsyncClient, settings: IngestSettings, op: str
) -> None:
    token = issue_token(settings, role="field", operations=[op])
    claims = jwt.decode(token, options={"verify_signature": False})
    secret = settings.jwt_secret.get_secret_value()
    expired = jwt.encode({**claims, "exp": int(time.time()) - 60}, secret, algorithm="HS256")
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
