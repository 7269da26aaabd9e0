"""Development tokens and the settings that decide which issuer is trusted, and how safely."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from services.aggregator.settings import AggregatorSettings
from services.common.access import covers
from services.common.auth import AuthError
from services.common.oidc import unverified_claims
from services.ingest.settings import IngestSettings
from services.query.settings import QuerySettings
from services.stack.devissuer.keys import load, load_or_create
from services.stack.devissuer.tokens import dev_token, dev_verifier
from services.stack.settings import StackSettings

IDP = "https://login.example/tenant/v2.0"
TLS_DSN = "postgresql://u:p@db.example/opsledger?sslmode=verify-full"


@pytest.fixture(autouse=True)
def _no_deployment_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings under test come from the arguments, not from the shell's exports."""
    for name in list(os.environ):
        if name.startswith("OPSLEDGER_") or name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
            monkeypatch.delenv(name)


@pytest.fixture
def stack(tmp_path: Path) -> StackSettings:
    return StackSettings(dir=tmp_path, issuer_port=46999)


async def test_a_development_token_round_trips_role_scope_and_subject(
    stack: StackSettings,
) -> None:
    token = dev_token("field", ["op-a", "op-b"], subject="pc-1", stack=stack)
    principal = await dev_verifier(stack).verify(token)
    assert (principal.role, principal.subject) == ("field", "pc-1")
    assert principal.operations == {"op-a", "op-b"}
    assert covers(principal, "op-a") and not covers(principal, "op-c")
    assert unverified_claims(token)["iss"] == "http://127.0.0.1:46999"


async def test_auditor_token_covers_every_operation(stack: StackSettings) -> None:
    principal = await dev_verifier(stack).verify(dev_token("auditor", stack=stack))
    assert covers(principal, "anything")


def test_the_private_key_is_created_once_and_readable_only_by_its_owner(
    stack: StackSettings,
) -> None:
    key = load_or_create(stack.issuer_dir)
    assert load(stack.issuer_dir).kid == key.kid == load_or_create(stack.issuer_dir).kid
    assert (stack.issuer_dir / "signing-key.pem").stat().st_mode & 0o077 == 0
    (published,) = orjson.loads((stack.issuer_dir / "jwks.json").read_bytes())["keys"]
    assert not {"d", "p", "q"} & set(published)  # the JWKS holds the public half only


async def test_a_token_of_another_development_key_is_refused(
    stack: StackSettings, tmp_path: Path
) -> None:
    other = StackSettings(dir=tmp_path / "other", issuer_port=46999)
    with pytest.raises(AuthError, match="publishes no key"):
        await dev_verifier(stack).verify(dev_token("admin", stack=other))


async def test_a_development_token_for_another_audience_is_refused(stack: StackSettings) -> None:
    with pytest.raises(AuthError, match="Audience"):
        await dev_verifier(stack).verify(dev_token("admin", audience="elsewhere", stack=stack))


def test_development_tokens_are_asymmetric(stack: StackSettings) -> None:
    assert jwt.get_unverified_header(dev_token("admin", stack=stack))["alg"] == "RS256"


# -- production refuses what is only fit for a laptop -----------------------------------------


@pytest.mark.parametrize(
    ("cls", "overrides", "message"),
    [
        (QuerySettings, {"database_url": TLS_DSN}, "OPSLEDGER_OIDC_ISSUER must name"),
        (
            QuerySettings,
            {"database_url": TLS_DSN, "oidc_issuer": "http://idp.example"},
            "must be https",
        ),
        (QuerySettings, {"oidc_issuer": IDP}, "must require TLS"),
        (IngestSettings, {"oidc_issuer": IDP}, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        (AggregatorSettings, {"database_url": TLS_DSN}, "KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        (AggregatorSettings, {"kafka_security_protocol": "SSL"}, "must require TLS"),
    ],
)
def test_production_refuses_insecure_defaults(
    cls: type[Any], overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cls(env="production", **overrides)


@pytest.mark.parametrize(
    ("cls", "overrides"),
    [
        (QuerySettings, {"oidc_issuer": IDP, "database_url": TLS_DSN}),
        (QuerySettings, {"oidc_issuer": IDP, "insecure_database_without_tls": True}),
        (
            QuerySettings,
            {"oidc_issuer": "http://idp", "insecure_http_issuer": True, "database_url": TLS_DSN},
        ),
        (IngestSettings, {"oidc_issuer": IDP, "kafka_security_protocol": "SSL"}),
        (IngestSettings, {"oidc_issuer": IDP, "insecure_kafka_plaintext": True}),
        (AggregatorSettings, {"kafka_security_protocol": "SSL", "database_url": TLS_DSN}),
    ],
)
def test_production_starts_when_secure_or_explicitly_insecure(
    cls: type[Any], overrides: dict[str, Any]
) -> None:
    assert cls(env="production", **overrides).env == "production"


def test_symmetric_algorithms_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="refused: HS256"):
        QuerySettings(oidc_algorithms=["RS256", "HS256"])


def test_services_hold_no_signing_secret() -> None:
    for cls in (QuerySettings, IngestSettings, AggregatorSettings):
        names = set(cls.model_fields)
        assert not {n for n in names if "secret" in n or "private" in n}, cls
