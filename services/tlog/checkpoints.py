"""Signed checkpoints: issue (every few seconds while events arrive, on close, on demand), read.

A checkpoint is the C2SP tlog-checkpoint text of an operation's tree (origin
``<key name>/<operation>``, size, base64 root) signed as a C2SP signed note with the ledger's
Ed25519 key, and stored append-only in ``tlog.checkpoints``.

Before signing a new size the ledger checks a consistency proof from the last checkpoint it
signed for that operation, computed from the stored tree: if someone rewrote the stored tree
under an already signed size, the ledger refuses to sign (`ForkRefused`) instead of blessing
the rewrite. `issue` is also the hook for closing an operation: call it with ``reason="close"``
in the transaction that closes it, after the batch's events are written.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from services.tlog import tree
from services.tlog.keys import Signer
from services.tlog.verifier import (
    Checkpoint,
    VerificationError,
    open_checkpoint,
    verify_consistency,
)

log = logging.getLogger(__name__)
Reason = Literal["interval", "close", "demand"]

_COLUMNS = "operation_id, size, root, note, key_id, reason, issued_at"
_LATEST = (
    f"SELECT {_COLUMNS} FROM tlog.checkpoints WHERE operation_id = $1 ORDER BY size DESC LIMIT 1"  # noqa: S608
)
_AT = f"SELECT {_COLUMNS} FROM tlog.checkpoints WHERE operation_id = $1 AND size = $2"  # noqa: S608
_ALL = f"SELECT {_COLUMNS} FROM tlog.checkpoints WHERE operation_id = $1 ORDER BY size"  # noqa: S608
_INSERT = (
    "INSERT INTO tlog.checkpoints (operation_id, size, root, note, key_id, reason)"
    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (operation_id, size) DO NOTHING"
)
_INSERT_KEY = "INSERT INTO tlog.keys (key_id, verifier_key) VALUES ($1, $2) ON CONFLICT DO NOTHING"
# Of the given operations, those whose tree grew past their latest checkpoint, and whether
# that checkpoint is old enough to sign again.
_DUE = """
    SELECT h.operation_id,
           (c.issued_at IS NULL OR c.issued_at <= now() - make_interval(secs => $1)) AS due
    FROM ledger.chain_heads AS h
    LEFT JOIN LATERAL (
        SELECT c.size, c.issued_at FROM tlog.checkpoints AS c
        WHERE c.operation_id = h.operation_id ORDER BY c.size DESC LIMIT 1
    ) AS c ON true
    WHERE h.operation_id = ANY($2::text[]) AND h.seq > COALESCE(c.size, 0)
    ORDER BY h.operation_id
"""


class ForkRefused(RuntimeError):
    """The stored tree is not consistent with a checkpoint the ledger already signed."""


def origin(signer: Signer, operation_id: str) -> str:
    """The checkpoint origin of an operation's tree: ``<key name>/<operation>``."""
    return f"{signer.name}/{operation_id}"


@dataclass(frozen=True)
class Stored:
    """A signed checkpoint as kept in ``tlog.checkpoints``."""

    operation_id: str
    size: int
    root: bytes
    note: str
    key_id: str
    reason: str
    issued_at: datetime

    @classmethod
    def of(cls, row: Any) -> Stored:
        return cls(
            row["operation_id"], int(row["size"]), bytes(row["root"]), row["note"],
            row["key_id"], row["reason"], row["issued_at"],
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "size": self.size,
            "root_hash": base64.b64encode(self.root).decode(),
            "checkpoint": self.note,
            "key_id": self.key_id,
            "reason": self.reason,
            "issued_at": self.issued_at.isoformat(),
        }


async def public_keys(conn: asyncpg.Connection | asyncpg.Pool) -> list[dict[str, Any]]:
    """Every verifier key the ledger has signed with, oldest first."""
    rows = await conn.fetch(
        "SELECT key_id, verifier_key, first_used_at FROM tlog.keys ORDER BY first_used_at"
    )
    return [
        {"key_id": r["key_id"], "verifier_key": r["verifier_key"],
         "first_used_at": r["first_used_at"].isoformat()}
        for r in rows
    ]  # fmt: skip


async def latest(conn: asyncpg.Connection, operation_id: str) -> Stored | None:
    row = await conn.fetchrow(_LATEST, operation_id)
    return None if row is None else Stored.of(row)


async def at_size(conn: asyncpg.Connection, operation_id: str, size: int) -> Stored | None:
    row = await conn.fetchrow(_AT, operation_id, size)
    return None if row is None else Stored.of(row)


async def every(conn: asyncpg.Connection, operation_id: str) -> list[Stored]:
    return [Stored.of(r) for r in await conn.fetch(_ALL, operation_id)]


async def issue(
    conn: asyncpg.Connection,
    operation_id: str,
    signer: Signer,
    reason: Reason,
    *,
    size: int | None = None,
) -> Stored | None:
    """Sign and store the checkpoint of the tree at ``size`` (default: its current size).

    Returns the stored checkpoint (an existing one when that size was signed already), or None
    for an empty tree. Raises `ForkRefused` if the stored tree disagrees with the previous
    checkpoint the ledger signed.
    """
    current = await tree.size(conn, operation_id)
    size = current if size is None else size
    if size > current:
        raise ValueError(f"the tree of {operation_id} has {current} leaves, not {size}")
    if size <= 0:
        return None
    existing = await at_size(conn, operation_id, size)
    if existing is not None:
        return existing
    root = await tree.root(conn, operation_id, size)
    await _check_against_last(conn, operation_id, signer, size, root)
    note = signer.sign_note(Checkpoint(origin(signer, operation_id), size, root).text())
    await conn.execute(_INSERT_KEY, signer.key_id.hex(), str(signer.public))
    await conn.execute(_INSERT, operation_id, size, root, note, signer.key_id.hex(), reason)
    stored = await at_size(conn, operation_id, size)
    assert stored is not None
    log.info("checkpoint %s size %d (%s)", operation_id, size, reason)
    return stored


async def on_close(conn: asyncpg.Connection, operation_id: str, signer: Signer) -> Stored | None:
    """The final checkpoint of an operation being closed (the lifecycle's hook).

    Call it inside the transaction that closes the operation, after that transaction's events
    (and so their leaves) are written: the checkpoint then covers exactly the closed tally.
    """
    return await issue(conn, operation_id, signer, "close")


async def _check_against_last(
    conn: asyncpg.Connection, operation_id: str, signer: Signer, size: int, root: bytes
) -> None:
    """Refuse to sign unless the stored tree extends the last checkpoint signed below ``size``."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM tlog.checkpoints WHERE operation_id = $1 AND size < $2"  # noqa: S608
        " ORDER BY size DESC LIMIT 1",
        operation_id,
        size,
    )
    if row is None:
        return
    last = Stored.of(row)
    try:
        signed = open_checkpoint(last.note, signer.public, origin(signer, operation_id))
        proof = await tree.consistency(conn, operation_id, signed.size, size)
        verify_consistency(signed.size, size, proof, signed.root, root)
    except (VerificationError, tree.TreeCorrupt) as exc:
        raise ForkRefused(
            f"refusing to sign {operation_id} at size {size}: the stored tree is not consistent"
            f" with the checkpoint signed at size {last.size} ({exc})"
        ) from exc


async def issue_due(
    pool: asyncpg.Pool, signer: Signer, interval_s: float, operations: Sequence[str]
) -> tuple[list[Stored], list[str]]:
    """Sign each of ``operations`` whose tree grew and whose last checkpoint is old enough.

    Returns the checkpoints issued, and the operations that grew but must wait for the
    interval (sign them on a later call).
    """
    out, waiting = [], []
    async with pool.acquire() as conn:
        for row in await conn.fetch(_DUE, interval_s, list(operations)):
            if not row["due"]:
                waiting.append(row["operation_id"])
                continue
            try:
                stored = await issue(conn, row["operation_id"], signer, "interval")
            except (ForkRefused, tree.TreeCorrupt) as exc:
                log.error("%s", exc)  # loud, and every interval again, until someone looks
                continue
            if stored is not None:
                out.append(stored)
    return out, waiting
