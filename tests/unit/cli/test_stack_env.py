"""`opsledger stack env` gives query the registrar URL, so a query service started from that env
creates and closes operations instead of answering 503 (issue 16 item 1), as `make demo` does;
never for a database the stack did not give roles to."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.stack import stack_app

REGISTRAR = "OPSLEDGER_QUERY_OPERATIONS_DATABASE_URL"


def _exports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict[str, str]:
    """The variables `stack env` exports, for a stack on PostgreSQL port 47432."""
    for name in ("DATABASE_URL", "OPSLEDGER_DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS",
                 "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS", "OPSLEDGER_OIDC_ISSUER",
                 "OPSLEDGER_STACK_MIGRATE", REGISTRAR):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPSLEDGER_STACK_DIR", str(tmp_path))
    monkeypatch.setenv("OPSLEDGER_STACK_PG_PORT", "47432")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(stack_app, ["env"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(line.startswith("export ") for line in lines), lines
    return dict(line.removeprefix("export ").split("=", 1) for line in lines)


def test_env_exports_the_registrar_url_of_the_stacks_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    exports = _exports(monkeypatch, tmp_path)
    assert exports["DATABASE_URL"] == "postgresql://opsledger@127.0.0.1:47432/opsledger"
    assert exports[REGISTRAR] == "postgresql://opsledger_registrar@127.0.0.1:47432/opsledger"


def test_env_names_no_registrar_where_the_stack_made_no_roles(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    external = "postgresql://someone@db.example:5432/ledger"
    exports = _exports(monkeypatch, tmp_path, DATABASE_URL=external)
    assert exports["DATABASE_URL"] == external
    assert REGISTRAR not in exports
    assert REGISTRAR not in _exports(monkeypatch, tmp_path, OPSLEDGER_STACK_MIGRATE="false")
