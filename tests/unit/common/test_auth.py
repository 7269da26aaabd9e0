"""Tokens: one algorithm, issuer, audience, expiry; anything else is refused."""

import time

import jwt
import pytest

from services.common.access import covers
from services.common.auth import AuthError, decode_token, issue_token
from services.common.settings import CommonSettings

SETTINGS = CommonSettings()


def test_round_trip_keeps_role_scope_and_subject() -> None:
    token = issue_token(SETTINGS, role="field", operations=["op-a", "op-b"], subject="pc-1")
    principal = decode_token(SETTINGS, token)
    assert (principal.role, principal.subject) == ("field", "pc-1")
    assert principal.operations == {"op-a", "op-b"}
    assert covers(principal, "op-a") and not covers(principal, "op-c")


def test_auditor_token_covers_every_operation() -> None:
    principal = decode_token(SETTINGS, issue_token(SETTINGS, role="auditor"))
    assert covers(principal, "anything")


@pytest.mark.parametrize(
    "claims_change",
    [
        {"aud": "someone-else"},
        {"iss": "someone-else"},
        {"exp": int(time.time()) - 60},
        {"role": "superuser"},
        {"ops": "op-a"},
        # the subject is stamped on every event as `principal`; PostgreSQL cannot store NUL
        {"sub": "pc\x004101"},
        {"sub": "pc-4101\n"},
        {"sub": "pc\ud800"},
    ],
)
def test_bad_claims_are_refused(claims_change: dict[str, object]) -> None:
    now = int(time.time())
    claims = {
        "iss": "opsledger",
        "aud": "opsledger",
        "sub": "x",
        "role": "field",
        "ops": [],
        "iat": now,
        "exp": now + 60,
    }
    claims.update(claims_change)
    token = jwt.encode(claims, SETTINGS.jwt_secret.get_secret_value(), algorithm="HS256")
    with pytest.raises(AuthError):
        decode_token(SETTINGS, token)


def test_alg_none_and_tampered_signature_are_refused() -> None:
    token = issue_token(SETTINGS, role="admin")
    header, payload, signature = token.split(".")
    unsigned = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}), key=None, algorithm="none"
    )
    with pytest.raises(AuthError):
        decode_token(SETTINGS, unsigned)
    forged = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(AuthError):
        decode_token(SETTINGS, forged)


def test_production_refuses_the_placeholder_secret() -> None:
    with pytest.raises(ValueError, match="JWT_SECRET"):
        CommonSettings(env="production")
