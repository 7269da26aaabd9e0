"""`opsledger summary` prints the same press-release list as the HTTP summary."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services.stack.devissuer.tokens import dev_token

from .ledger import Ledger, make_event

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def _token(role: str = "auditor", operations: tuple[str, ...] = (), subject: str = "cli-1") -> str:
    return dev_token(role, operations, subject=subject)


async def opsledger(
    *args: str, database_url: str, token: str | None = None
) -> tuple[int, str, str]:
    """The real command, signed in with an auditor token unless ``token`` is given."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli.main",
        *args,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "OPSLEDGER_TOKEN": _token() if token is None else token,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_summary_command_matches_the_http_summary(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token, database_url: str
) -> None:
    events = [
        make_event(op_id, "warrant_executed", T0),
        make_event(op_id, "item_seized", T0, item="drug_wrap", substance="cocaine", quantity=3),
        make_event(
            op_id, "item_seized", T0 + timedelta(hours=2), item="mobile_phone", quantity=118
        ),
    ]
    await ledger.submit(events, T0 + timedelta(hours=3))
    code, out, err = await opsledger("summary", "--operation", op_id, database_url=database_url)
    assert code == 0, err
    assert out == (  # an implicit operation (never created) is titled by its slug
        f"# {op_id}\n\n"
        "- 1 warrant executed\n- 3 wraps of cocaine seized\n- 118 mobile phones seized\n"
    )
    r = await client.get(f"/v1/operations/{op_id}/summary", headers=token("auditor"))
    assert r.text == out

    as_of = (T0 + timedelta(hours=1)).isoformat()
    code, out, _ = await opsledger(
        "summary", "--operation", op_id, "--as-of", as_of, database_url=database_url
    )
    assert (code, out) == (0, f"# {op_id}\n\n- 1 warrant executed\n- 3 wraps of cocaine seized\n")


async def test_summary_command_refuses_bad_input(database_url: str) -> None:
    code, _, err = await opsledger(
        "summary", "--operation", "never-seen-op", database_url=database_url
    )
    assert code == 1 and "unknown operation" in err
    code, _, err = await opsledger(
        "summary", "--operation", "x-op", "--known-at", "noon", database_url=database_url
    )
    assert code == 2 and "--known-at" in err


async def test_summary_command_signs_in_like_any_client(
    ledger: Ledger, op_id: str, database_url: str
) -> None:
    await ledger.submit([make_event(op_id, "warrant_executed", T0)], T0 + timedelta(hours=1))
    args = ("summary", "--operation", op_id)
    code, _, err = await opsledger(*args, database_url=database_url, token="")
    assert code == 2 and "OPSLEDGER_TOKEN" in err
    other = _token("supervisor", ("another-op",), "sup-other")
    code, _, err = await opsledger(*args, database_url=database_url, token=other)
    assert code == 2 and "not scoped" in err
    own = _token("supervisor", (op_id,), "sup-own")
    code, out, err = await opsledger(*args, database_url=database_url, token=own)
    assert (code, out) == (0, f"# {op_id}\n\n- 1 warrant executed\n"), err
    admin = _token("admin", (), f"admin-{op_id}")
    assert (await opsledger(*args, database_url=database_url, token=admin))[0] == 0
    conn = await asyncpg.connect(database_url)
    try:
        logged = await conn.fetch(
            "SELECT principal FROM audit.access_log WHERE action = 'summary' AND operation_id = $1",
            op_id,
        )
    finally:
        await conn.close()
    # the rule: an admin's read is logged, a supervisor's aggregate read of its own op is not
    assert [r["principal"] for r in logged] == [f"admin-{op_id}"]
