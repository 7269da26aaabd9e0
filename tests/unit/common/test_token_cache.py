"""The token cache answers like decode_token: same principal, same refusals, never past exp;
authorize() turns its refusals into 401 and a wrong role into 403."""

from __future__ import annotations

import time

import jwt
import pytest
from starlette.requests import Request

from services.common import auth
from services.common.auth import AuthError, Principal, TokenCache, decode_token, issue_token
from services.common.http import authorize
from services.common.problems import ProblemError
from services.common.settings import CommonSettings


def test_a_verified_token_is_remembered_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CommonSettings()
    calls: list[str] = []

    def counting_decode(s: CommonSettings, token: str) -> Principal:
        calls.append(token)
        return decode_token(s, token)

    monkeypatch.setattr(auth, "decode_token", counting_decode)
    cache = TokenCache(settings)
    token = issue_token(settings, role="supervisor", operations=["op-a"], ttl_s=60)
    first = cache.decode(token)
    assert first.role == "supervisor" and first.operations == frozenset({"op-a"})
    assert cache.decode(token) is first
    assert len(calls) == 1
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    cache.decode(token)  # past its exp: verified again (and refused by decode_token's own clock)
    assert len(calls) == 2


def test_a_tampered_token_never_hits_the_cache() -> None:
    settings = CommonSettings()
    cache = TokenCache(settings)
    token = issue_token(settings, role="supervisor", ttl_s=60)
    cache.decode(token)
    head, payload, sig = token.split(".")
    with pytest.raises(AuthError):
        cache.decode(f"{head}.{payload}.{sig[:-2]}AA")
    with pytest.raises(AuthError):
        cache.decode("garbage")


def _request(token: str) -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_a_forged_token_is_401_even_after_the_real_one_was_seen() -> None:
    settings = CommonSettings()
    cache = TokenCache(settings)
    token = issue_token(settings, role="field", operations=["op-aaa"])
    assert authorize(_request(token), cache, ("field",)).operations == {"op-aaa"}
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "ops": ["op-bbb"]}, "x" * 32, algorithm="HS256")
    with pytest.raises(ProblemError) as refused:
        authorize(_request(forged), cache, ("field",))
    assert refused.value.status == 401


def test_a_valid_token_of_another_role_is_403() -> None:
    settings = CommonSettings()
    token = issue_token(settings, role="supervisor", operations=["op-aaa"])
    with pytest.raises(ProblemError) as refused:
        authorize(_request(token), TokenCache(settings), ("field",))
    assert refused.value.status == 403
