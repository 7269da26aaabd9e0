"""One decision for who may act on an operation, one 403, one rule for whose reads are logged."""

from __future__ import annotations

import orjson
import pytest

from services.common import access_log
from services.common.access import covers, require_operation, require_role
from services.common.auth import Principal, Role
from services.common.problems import ProblemError
from services.stack.devissuer.tokens import dev_token, dev_verifier

FORBIDDEN_TYPE = "https://opsledger.dev/problems/forbidden"


def _who(role: Role, *ops: str) -> Principal:
    return Principal(subject=f"{role}-1", role=role, operations=frozenset(ops))


@pytest.mark.parametrize(
    ("principal", "covered"),
    [
        (_who("field", "op-a"), True),
        (_who("supervisor", "op-a"), True),
        (_who("field", "op-b"), False),
        (_who("supervisor"), False),
        (_who("auditor"), True),
        (_who("admin"), True),
    ],
)
def test_scope_decides_for_every_role(principal: Principal, covered: bool) -> None:
    assert covers(principal, "op-a") is covered
    if covered:
        require_operation(principal, "op-a")
    else:
        with pytest.raises(ProblemError) as caught:
            require_operation(principal, "op-a")
        body = orjson.loads(caught.value.response().body)
        assert (body["status"], body["type"]) == (403, FORBIDDEN_TYPE)
        assert body["errors"] == [
            {"path": "operation_id", "message": "this token is not scoped to operation 'op-a'"}
        ]


def test_wrong_role_is_the_same_403_type_as_wrong_scope() -> None:
    require_role(_who("auditor"), ("auditor", "admin"))
    with pytest.raises(ProblemError) as caught:
        require_role(_who("supervisor", "op-a"), ("auditor", "admin"))
    body = orjson.loads(caught.value.response().body)
    assert (body["status"], body["type"]) == (403, FORBIDDEN_TYPE)


@pytest.mark.parametrize(
    ("role", "action", "logged"),
    [
        # aggregate reads of scoped roles: no event, no personal reference
        ("field", "totals", False),
        ("supervisor", "totals", False),
        ("supervisor", "summary", False),
        ("supervisor", "stream", False),
        ("supervisor", "operations", False),
        # every read of events or personal references, whatever the role
        ("supervisor", "history", True),
        ("supervisor", "export", True),
        ("field", "verify", True),
        ("supervisor", "dlq_show", True),
        ("supervisor", "access_log", True),
        ("supervisor", "an-action-added-later", True),
        # every auditor and admin read
        ("auditor", "totals", True),
        ("admin", "totals", True),
        ("admin", "stream", True),
    ],
)
def test_access_log_rule(role: Role, action: str, logged: bool) -> None:
    assert access_log.is_logged(_who(role, "op-a"), action) is logged


def test_cli_runs_as_its_tokens_subject(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(access_log.TOKEN_ENV, raising=False)
    access_log.use_cli_token(None)
    with pytest.raises(access_log.CliAuthError, match="--token"):
        access_log.cli_principal()
    monkeypatch.setattr(access_log, "_verifier", dev_verifier)  # no issuer process in unit tests
    monkeypatch.setenv(access_log.TOKEN_ENV, dev_token(role="auditor", subject="officer-42"))
    principal = access_log.cli_principal()
    assert (principal.subject, principal.role) == ("officer-42", "auditor")
    access_log.use_cli_token(dev_token(role="supervisor", subject="sup-1"))
    try:
        with pytest.raises(access_log.CliAuthError, match="supervisor"):
            access_log.cli_principal()  # --token wins over the environment, and is checked
    finally:
        access_log.use_cli_token(None)


class _NoDatabase:
    async def fetchval(self, *args: object) -> int:
        raise AssertionError("a read that the rule does not log touched the access log")


async def test_unlogged_reads_write_nothing() -> None:
    conn = _NoDatabase()
    for role in ("field", "supervisor"):
        assert await access_log.record(conn, _who(role, "op-a"), "totals", "op-a") is None  # type: ignore[arg-type]
