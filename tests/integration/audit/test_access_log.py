"""The access log is append-only: no UPDATE, DELETE or TRUNCATE, whoever asks."""

from __future__ import annotations

import asyncpg
import pytest

from services.common import access_log
from services.common.auth import Principal

pytestmark = pytest.mark.integration


async def test_rows_are_appended_and_never_changed(pool: asyncpg.Pool, op_id: str) -> None:
    who = Principal(subject="auditor-x", role="auditor")
    row_id = await access_log.record(pool, who, "verify", op_id, {"why": "test"})
    entries, _ = await access_log.entries(pool, operation_id=op_id)
    assert [(e["id"], e["principal"], e["action"], e["params"]) for e in entries] == [
        (row_id, "auditor-x", "verify", {"why": "test"})
    ]
    for sql in (
        "UPDATE audit.access_log SET principal = 'someone-else' WHERE id = $1",
        "DELETE FROM audit.access_log WHERE id = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await pool.execute(sql, row_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("TRUNCATE audit.access_log")
    assert await pool.fetchval("SELECT principal FROM audit.access_log WHERE id = $1", row_id) == (
        "auditor-x"
    )
