"""The access log (``audit.access_log``, append-only): the one writer, and the listing.

Whose reads are logged, one rule for every caller (HTTP routes of query and audit, CLI
commands, rebuild): **every consultation by a principal that may see every operation (roles
``auditor`` and ``admin``; CLI commands run as ``cli:<os user>`` with the auditor role) is
logged, one row per call; reads by ``supervisor`` and ``field`` tokens, which see only their
own operations, are not.** :func:`record` applies the rule, so a caller never decides it; the
rule is :func:`is_logged` (issue 15 widens it to every role there, and nowhere else).
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.common.access import ALL_OPERATIONS
from services.common.auth import Principal, Role

#: The roles whose every consultation is logged: those that see every operation.
LOGGED_ROLES: tuple[Role, ...] = ALL_OPERATIONS


def is_logged(principal: Principal) -> bool:
    """Whether a consultation by ``principal`` is written to the access log."""
    return principal.role in LOGGED_ROLES


def cli_principal() -> Principal:
    """Who a CLI command runs as: ``cli:<os user>``, with the auditor role."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry (containers): still say it was the CLI
        user = "unknown"
    return Principal(subject=f"cli:{user}", role="auditor")


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    # Round-trip through orjson so datetimes and UUIDs are stored as their JSON spelling.
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(params, default=str))
    return loaded


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    principal: Principal,
    action: str,
    operation_id: str | None,
    params: dict[str, Any] | None = None,
) -> int | None:
    """Log one consultation (the row's id), or do nothing (None) when the rule says not to."""
    if not is_logged(principal):
        return None
    row_id = await conn.fetchval(
        """INSERT INTO audit.access_log (principal, role, action, operation_id, params)
           VALUES ($1, $2, $3, $4, $5::text::jsonb) RETURNING id""",
        principal.subject,
        principal.role,
        action,
        operation_id,
        orjson.dumps(_jsonable(params or {})).decode(),
    )
    return int(row_id)


async def entries(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    operation_id: str | None = None,
    action: str | None = None,
    principal: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; the cursor of the next (older) page, or None."""
    rows = await conn.fetch(
        """SELECT id, at, principal, role, action, operation_id, params FROM audit.access_log
           WHERE ($1::text IS NULL OR operation_id = $1)
             AND ($2::text IS NULL OR action = $2)
             AND ($3::text IS NULL OR principal = $3)
             AND ($4::timestamptz IS NULL OR at >= $4)
             AND ($5::bigint IS NULL OR id < $5)
           ORDER BY id DESC LIMIT $6""",
        operation_id,
        action,
        principal,
        since,
        before_id,
        limit + 1,
    )
    page = [
        {**dict(r), "at": r["at"].isoformat(), "params": _params(r["params"])} for r in rows[:limit]
    ]
    return page, (page[-1]["id"] if len(rows) > limit else None)


def _params(value: Any) -> Any:
    # A pool made by services.common.db decodes jsonb; a bare connection returns text.
    return orjson.loads(value) if isinstance(value, str) else value
