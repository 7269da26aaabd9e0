"""authorize(): 401 for a bad token, 403 for a good one of another role, 503 when the issuer's
keys cannot be had (never a pass), through the same verifier the services use."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from starlette.requests import Request

from services.common.http import authorize
from services.common.oidc import IssuerConfig, KeyCache, OidcVerifier
from services.common.problems import ProblemError
from services.stack.devissuer.tokens import dev_token, dev_verifier
from services.stack.settings import StackSettings


def _request(token: str) -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


@pytest.fixture
def stack(tmp_path: Path) -> StackSettings:
    return StackSettings(dir=tmp_path)


async def test_a_forged_token_is_401_even_after_the_real_one_was_seen(
    stack: StackSettings,
) -> None:
    verifier = dev_verifier(stack)
    token = dev_token("field", ["op-aaa"], stack=stack)
    assert (await authorize(_request(token), verifier, ("field",))).operations == {"op-aaa"}
    head, _, sig = token.split(".")
    _, body, _ = dev_token("field", ["op-bbb"], stack=stack).split(".")
    with pytest.raises(ProblemError) as refused:
        await authorize(_request(f"{head}.{body}.{sig}"), verifier, ("field",))
    assert refused.value.status == 401


async def test_a_valid_token_of_another_role_is_403(stack: StackSettings) -> None:
    token = dev_token("supervisor", ["op-aaa"], stack=stack)
    with pytest.raises(ProblemError) as refused:
        await authorize(_request(token), dev_verifier(stack), ("field",))
    assert refused.value.status == 403


async def test_an_issuer_that_cannot_be_reached_is_503_not_a_pass(stack: StackSettings) -> None:
    class Down:
        async def fetch(self) -> dict[str, object]:
            raise OSError("connection refused")

    verifier = OidcVerifier(IssuerConfig(stack.issuer_url, "opsledger"), KeyCache(Down()))
    with pytest.raises(ProblemError) as refused:
        await authorize(_request(dev_token("admin", stack=stack)), verifier, ("admin",))
    assert refused.value.status == 503


async def test_missing_and_unsigned_tokens_are_401(stack: StackSettings) -> None:
    unsigned = jwt.encode({"sub": "x", "roles": ["admin"]}, None, algorithm="none")
    for request in (Request({"type": "http", "headers": []}), _request(unsigned)):
        with pytest.raises(ProblemError) as refused:
            await authorize(request, dev_verifier(stack), ("admin",))
        assert refused.value.status == 401
