"""`opsledger token`: signs with the development issuer's key, and only where that makes sense."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from services.common.oidc import unverified_claims
from services.stack.devissuer.tokens import dev_verifier
from services.stack.settings import StackSettings


@pytest.fixture
def stack_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("OPSLEDGER_ENV", "OPSLEDGER_OIDC_ISSUER", "OPSLEDGER_STACK_ISSUER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPSLEDGER_STACK_DIR", str(tmp_path))
    return tmp_path


def test_before_the_stack_ran_there_is_no_key_to_sign_with(stack_dir: Path) -> None:
    result = CliRunner().invoke(app, ["token", "--role", "field"])
    assert result.exit_code == 2
    assert "opsledger stack up" in result.output


async def test_a_token_the_services_accept(stack_dir: Path) -> None:
    stack = StackSettings()
    dev_verifier(stack)  # what `stack up` does first: the key pair exists
    result = CliRunner().invoke(
        app, ["token", "--role", "supervisor", "--operation", "op-a", "--subject", "pc-7"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    principal = await dev_verifier(stack).verify(token)
    assert (principal.subject, principal.role, principal.operations) == (
        "pc-7", "supervisor", {"op-a"}
    )  # fmt: skip
    assert unverified_claims(token)["iss"] == stack.issuer_url


def test_refused_in_production(stack_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev_verifier(StackSettings())
    monkeypatch.setenv("OPSLEDGER_ENV", "production")
    result = CliRunner().invoke(app, ["token", "--role", "admin"])
    assert result.exit_code == 2
    assert "production" in result.output


def test_refused_when_the_services_trust_another_issuer(
    stack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev_verifier(StackSettings())
    monkeypatch.setenv("OPSLEDGER_OIDC_ISSUER", "https://login.example/tenant/v2.0")
    result = CliRunner().invoke(app, ["token", "--role", "admin"])
    assert result.exit_code == 2
    assert "identity provider" in result.output
