"""`make demo` runs query as its read-only role and gives it the registrar URL, so an admin can
create and close operations over HTTP in the demo (issue 16 item 1, issue 15 item 6)."""

from __future__ import annotations

import pytest

from services.cli.demo import _database_role

STACK = "postgresql://opsledger@127.0.0.1:47432/opsledger"


def test_query_reads_as_its_role_and_registers_as_the_registrar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DATABASE_URL", "OPSLEDGER_DATABASE_URL", "OPSLEDGER_STACK_MIGRATE"):
        monkeypatch.delenv(name, raising=False)
    assert _database_role("query", STACK) == {
        "OPSLEDGER_DATABASE_URL": "postgresql://opsledger_query@127.0.0.1:47432/opsledger",
        "OPSLEDGER_QUERY_OPERATIONS_DATABASE_URL": (
            "postgresql://opsledger_registrar@127.0.0.1:47432/opsledger"
        ),
    }
    assert _database_role("aggregator", STACK) == {
        "OPSLEDGER_DATABASE_URL": "postgresql://opsledger_aggregator@127.0.0.1:47432/opsledger"
    }
    assert _database_role("ingest", STACK) == {}
