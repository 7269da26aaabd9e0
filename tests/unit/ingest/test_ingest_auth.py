"""Token checks of the write endpoints: require_role's answers, each token verified once."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from services.common.auth import issue_token
from services.common.problems import ProblemError
from services.ingest.auth import CachedAuth
from services.ingest.settings import IngestSettings

from .conftest import make_event


def test_a_token_is_reused_only_until_it_expires(settings: IngestSettings) -> None:
    auth = CachedAuth(settings, "field")
    token = issue_token(settings, role="field", operations=["op-aaa"], ttl_s=1)
    first = auth.principal(token)
    assert auth.principal(token) is first  # reused, not decoded again
    time.sleep(1.1)
    # Past `exp` the token is verified afresh (decode_token then applies its own 5 s leeway).
    again = auth.principal(token)
    assert again == first and again is not first


def test_a_forged_token_is_401_even_after_the_real_one_was_seen(settings: IngestSettings) -> None:
    auth = CachedAuth(settings, "field")
    token = issue_token(settings, role="field", operations=["op-aaa"])
    auth.principal(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "ops": ["op-bbb"]}, "x" * 32, algorithm="HS256")
    with pytest.raises(ProblemError) as refused:
        auth.principal(forged)
    assert refused.value.status == 401


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
