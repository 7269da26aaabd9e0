"""The token cache answers like decode_token: same principal, same refusals, never past exp."""

from __future__ import annotations

import time

import pytest

from services.common.auth import AuthError, Principal, decode_token, issue_token
from services.common.settings import CommonSettings
from services.query import tokens
from services.query.tokens import TokenCache


def test_a_verified_token_is_remembered_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CommonSettings()
    calls: list[str] = []

    def counting_decode(s: CommonSettings, token: str) -> Principal:
        calls.append(token)
        return decode_token(s, token)

    monkeypatch.setattr(tokens, "decode_token", counting_decode)
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
