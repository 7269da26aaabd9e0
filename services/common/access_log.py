"""The access log (``audit.access_log``, append-only, hash-chained): the one writer, the listing
and the chain check.

Whose reads are logged, one rule for every caller (HTTP routes of query and audit, CLI
commands, rebuild), :func:`is_logged`: **every consultation is logged, one row per call, except
the aggregate reads (totals, summary, stream, operation list) of the roles scoped to their own
operations (``field``, ``supervisor``)**. So every read of events or personal references
(history, export, verify, DLQ, proofs, the access log itself) is logged whatever the role, and
every read by an ``auditor`` or ``admin`` is logged. An action this module has never heard of is
logged: the exception is a closed list, the rule is not. No setting turns it off.

Each row is a link of one chain, like the ledger's events: ``seq`` (1, 2, ...), ``prev_hash``
and ``hash`` = SHA-256 over the canonical JSON of the row (:func:`row_body`) followed by
``prev_hash``. A writer reads the head under a row lock (``audit.access_log_lock_head()``) and
the table's insert trigger checks that the row extends that head and advances it, so two
writers can never fork the chain. ``opsledger verify --access-log`` runs :func:`verify_chain`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from schemas.canonical import GENESIS_HASH, chain_hash
from services.common.access import ALL_OPERATIONS
from services.common.auth import AuthError, Principal, Role
from services.common.oidc import OidcVerifier

#: The roles whose every consultation is logged: those that see every operation.
LOGGED_ROLES: tuple[Role, ...] = ALL_OPERATIONS
#: Reads of aggregates only (no event, no personal reference): not logged for scoped roles.
AGGREGATE_READS: frozenset[str] = frozenset({"totals", "summary", "stream", "operations"})
#: The environment variable the CLI reads its bearer token from (or ``--token``).
TOKEN_ENV = "OPSLEDGER_TOKEN"  # noqa: S105 - a variable name, not a secret


def is_logged(principal: Principal, action: str) -> bool:
    """Whether the consultation ``action`` by ``principal`` is written to the access log."""
    return principal.role in LOGGED_ROLES or action not in AGGREGATE_READS


# ---- who the CLI runs as ---------------------------------------------------------------


class CliAuthError(Exception):
    """A CLI command that reads the ledger was run without a valid token of a permitted role."""


_cli_token: str | None = None
_cli_verified: dict[str, Principal] = {}


def use_cli_token(token: str | None) -> None:
    """The token of this CLI invocation (``--token``); None falls back to ``$OPSLEDGER_TOKEN``."""
    global _cli_token
    _cli_token = token or None


def cli_principal(roles: tuple[Role, ...] = LOGGED_ROLES) -> Principal:
    """Who a CLI command runs as: the subject of its bearer token, verified like any client's.

    The CLI authenticates as HTTP clients do: ``--token`` or ``$OPSLEDGER_TOKEN`` (e.g. from
    ``opsledger token --role auditor``), checked by the same verification as the services, and
    its role must be one of ``roles``.
    """
    token = _cli_token or os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise CliAuthError(
            f"this command reads the ledger and is logged under your identity: pass --token or "
            f"set {TOKEN_ENV} (e.g. {TOKEN_ENV}=$(opsledger token --role auditor --subject $USER))"
        )
    principal = _cli_verified.get(token)
    if principal is None:
        try:
            principal = _verify(token)
        except AuthError as exc:
            raise CliAuthError(f"the CLI token was refused: {exc}") from exc
        _cli_verified[token] = principal
    if principal.role not in roles:
        raise CliAuthError(
            f"role {principal.role!r} may not do this; needs one of {', '.join(roles)}"
        )
    return principal


def _verifier() -> OidcVerifier:
    """The services' verifier: the configured issuer's keys (tests put a fake here)."""
    from services.common.issuer_settings import IssuerSettings

    return IssuerSettings().verifier()


def _verify(token: str) -> Principal:
    """The token checked against the configured issuer's keys, as the services check it."""
    verifier = _verifier()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(verifier.verify(token))
    box: dict[str, Any] = {}

    def worker() -> None:  # called from inside an event loop: verify on a loop of its own
        try:
            box["value"] = asyncio.run(verifier.verify(token))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=worker, name="opsledger-cli-token")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    principal: Principal = box["value"]
    return principal


# ---- the chain -------------------------------------------------------------------------


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    # Round-trip through orjson so datetimes and UUIDs are stored as their JSON spelling.
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(params, default=str))
    return loaded


def _at(value: datetime) -> str:
    # PostgreSQL keeps microseconds: this spelling survives the round trip exactly.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_body(
    seq: int,
    at: datetime,
    principal: str,
    role: str,
    action: str,
    operation_id: str | None,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """The canonical form of one row, what its ``hash`` covers (with ``prev_hash``)."""
    return {
        "seq": seq,
        "at": _at(at),
        "principal": principal,
        "role": role,
        "action": action,
        "operation_id": operation_id,
        "params": dict(params),
    }


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    principal: Principal,
    action: str,
    operation_id: str | None,
    params: dict[str, Any] | None = None,
) -> int | None:
    """Log one consultation (the row's id), or do nothing (None) when the rule says not to."""
    if not is_logged(principal, action):
        return None
    entry = Consultation.of(principal, action, operation_id, params)
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as c:
            return (await append(c, [entry]))[0]
    return (await append(conn, [entry]))[0]


@dataclass(frozen=True, slots=True)
class Consultation:
    """One row to append: who consulted what (``params`` already JSON-ready)."""

    principal: Principal
    action: str
    operation_id: str | None
    params: dict[str, Any]

    @classmethod
    def of(
        cls,
        principal: Principal,
        action: str,
        operation_id: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> Consultation:
        """The row for these arguments of :func:`record` (params made JSON-ready)."""
        return cls(principal, action, operation_id, _jsonable(params or {}))


async def append(conn: asyncpg.Connection, entries: Sequence[Consultation]) -> list[int]:
    """Append ``entries`` as consecutive links of the chain, in order, in one transaction: one
    head lock and one commit however many rows (the ids, in the same order). The caller decides
    whether each is logged (:func:`is_logged`)."""
    if not entries:
        return []
    # Head locked until commit: the next writer waits here, then links to these rows.
    async with conn.transaction():
        head = await conn.fetchrow("SELECT seq, hash, at FROM audit.access_log_lock_head()")
        assert head is not None, "audit.access_log_head has its one row (migration 0007)"
        seq, prev, at = int(head["seq"]), head["hash"], head["at"]
        columns: list[list[Any]] = [[] for _ in range(8)]
        for e in entries:
            seq += 1
            body = row_body(seq, at, e.principal.subject, e.principal.role, e.action,
                            e.operation_id, e.params)  # fmt: skip
            link = chain_hash(body, prev)
            row = (seq, e.principal.subject, e.principal.role, e.action, e.operation_id,
                   orjson.dumps(e.params).decode(), prev, link)  # fmt: skip
            for column, value in zip(columns, row, strict=True):
                column.append(value)
            prev = link
        # In seq order: the insert trigger checks that each row extends the head it advances.
        rows = await conn.fetch(
            """INSERT INTO audit.access_log
                   (seq, at, principal, role, action, operation_id, params, prev_hash, hash)
               SELECT s, $2, p, r, a, o, j::jsonb, ph, h
               FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                           $7::text[], $8::text[], $9::text[]) AS t(s, p, r, a, o, j, ph, h)
               ORDER BY s
               RETURNING seq, id""",
            columns[0],
            at,
            *columns[1:],
        )
    ids = {int(r["seq"]): int(r["id"]) for r in rows}
    first = seq - len(entries) + 1
    return [ids[first + i] for i in range(len(entries))]


@dataclass
class ChainReport:
    """What ``opsledger verify --access-log`` found."""

    rows: int = 0
    head_seq: int = 0
    first_broken_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head_seq": self.head_seq,
            "first_broken_seq": self.first_broken_seq,
            "problems": self.problems,
        }


async def verify_chain(conn: asyncpg.Connection, batch: int = 5000) -> ChainReport:
    """Recompute every row's hash in seq order; check links, gaps and the recorded head.

    An edited row fails its own hash, a deleted row leaves a gap (or, at the end, a head past
    the last row), an inserted or reordered row breaks the next row's ``prev_hash``.
    """
    report = ChainReport()

    def broken(seq: int, reason: str) -> None:
        if report.first_broken_seq is None:
            report.first_broken_seq = seq
        if len(report.problems) < 100:
            report.problems.append(f"seq {seq}: {reason}")

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        head = await conn.fetchrow("SELECT seq, hash FROM audit.access_log_head")
        expected_seq, prev = 1, GENESIS_HASH
        last_seq = 0
        while True:
            rows = await conn.fetch(
                """SELECT seq, at, principal, role, action, operation_id, params::text AS params,
                          prev_hash, hash FROM audit.access_log
                   WHERE seq >= $1 ORDER BY seq LIMIT $2""",
                last_seq + 1,
                batch,
            )
            for r in rows:
                seq = int(r["seq"])
                report.rows += 1
                if seq != expected_seq:
                    broken(expected_seq, f"missing (next row present is seq {seq})")
                if r["prev_hash"] != prev:
                    broken(seq, "prev_hash does not match the previous row's hash")
                body = row_body(seq, r["at"], r["principal"], r["role"], r["action"],
                                r["operation_id"], orjson.loads(r["params"]))  # fmt: skip
                if chain_hash(body, r["prev_hash"]) != r["hash"]:
                    broken(seq, "hash does not match the row's content (edited)")
                prev, expected_seq, last_seq = r["hash"], seq + 1, seq
            if len(rows) < batch:
                break
    report.head_seq = int(head["seq"]) if head else 0
    if head is None:
        broken(0, "audit.access_log_head is missing")
    elif (int(head["seq"]), head["hash"]) != (last_seq, prev):
        broken(
            last_seq + 1,
            f"the head says seq {head['seq']} but the last row is seq {last_seq}"
            " (rows removed at the end, or the head was moved)",
        )
    return report


# ---- the listing -----------------------------------------------------------------------


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
        """SELECT id, seq, at, principal, role, action, operation_id, params, hash
           FROM audit.access_log
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
