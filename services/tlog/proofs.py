"""Proof documents: what an independent verifier needs, in one JSON object each.

Shared by the HTTP routes, the CLI and `opsledger prove`. Every document names the operation
and the tree size, carries hashes in base64 (the checkpoint's spelling) and the signed
checkpoint of that size when the ledger signed one (``checkpoint``: a C2SP signed note; null
otherwise, and ``root_hash`` is then only the ledger's word). An inclusion proof carries its
leaf: the event's stored body as canonical JSON, exactly the bytes hashed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

from schemas.canonical import canonical_json
from services.tlog import checkpoints, merkle, tree
from services.tlog.verifier import leaf_hash


class ProofError(LookupError):
    """A proof that cannot be given: unknown event, size outside the tree (message says why)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


async def _default_size(conn: asyncpg.Connection, operation_id: str) -> int:
    latest = await checkpoints.latest(conn, operation_id)
    if latest is not None:
        return latest.size
    return await tree.size(conn, operation_id)


async def _checked_size(conn: asyncpg.Connection, operation_id: str, size: int | None) -> int:
    current = await tree.size(conn, operation_id)
    if current == 0:
        raise ProofError(404, f"operation {operation_id!r} has no events in the ledger")
    if size is None:
        return await _default_size(conn, operation_id)
    if not 1 <= size <= current:
        raise ProofError(422, f"size must be between 1 and the tree's size {current}, not {size}")
    return size


async def _signed(conn: asyncpg.Connection, operation_id: str, size: int) -> str | None:
    stored = await checkpoints.at_size(conn, operation_id, size)
    return None if stored is None else stored.note


async def inclusion_doc(
    conn: asyncpg.Connection, operation_id: str, event_id: UUID, size: int | None = None
) -> dict[str, Any]:
    """The inclusion proof of one event in the tree of ``size`` (default: latest checkpoint)."""
    found = await tree.leaf_of(conn, operation_id, event_id)
    if found is None:
        raise ProofError(404, f"event {event_id} is not in operation {operation_id!r}")
    index, body = found
    size = await _checked_size(conn, operation_id, size)
    if index >= size:
        raise ProofError(
            422,
            f"event {event_id} is leaf {index}, after the tree of size {size}: ask a larger size",
        )
    leaf = canonical_json(body)
    proof, root = await tree.compute(  # one read of the nodes both need
        conn, operation_id, lambda g: (merkle.inclusion_proof(g, index, size), merkle.root(g, size))
    )
    return {
        "operation_id": operation_id,
        "event_id": str(event_id),
        "leaf_index": index,
        "tree_size": size,
        "leaf": leaf.decode(),
        "leaf_hash": _b64(leaf_hash(leaf)),
        "proof": tree.encode(proof),
        "root_hash": _b64(root),
        "checkpoint": await _signed(conn, operation_id, size),
        "algorithm": "RFC 9162 2.1.3: leaf SHA-256(0x00||leaf), node SHA-256(0x01||l||r)",
    }


async def consistency_doc(
    conn: asyncpg.Connection, operation_id: str, size1: int, size2: int | None = None
) -> dict[str, Any]:
    """The proof that the tree at ``size2`` (default: latest checkpoint) extends ``size1``."""
    size2 = await _checked_size(conn, operation_id, size2)
    if not 1 <= size1 <= size2:
        raise ProofError(422, f"from must be between 1 and to ({size2}), not {size1}")
    proof, root1, root2 = await tree.compute(
        conn,
        operation_id,
        lambda g: (
            merkle.consistency_proof(g, size1, size2),
            merkle.root(g, size1),
            merkle.root(g, size2),
        ),
    )
    return {
        "operation_id": operation_id,
        "from": size1,
        "to": size2,
        "proof": tree.encode(proof),
        "from_root_hash": _b64(root1),
        "to_root_hash": _b64(root2),
        "from_checkpoint": await _signed(conn, operation_id, size1),
        "to_checkpoint": await _signed(conn, operation_id, size2),
        "algorithm": "RFC 9162 2.1.4",
    }


async def events_doc(
    conn: asyncpg.Connection,
    operation_id: str,
    event_ids: Sequence[UUID],
    size: int,
) -> list[dict[str, Any]]:
    """Inclusion entries (as `opsledger prove` writes them) of events in the tree of ``size``."""
    out = []
    for event_id in event_ids:
        found = await tree.leaf_of(conn, operation_id, event_id)
        if found is None or found[0] >= size:
            raise ProofError(404, f"event {event_id} is not in the tree of size {size}")
        index, body = found
        proof = await tree.inclusion(conn, operation_id, index, size)
        out.append(
            {
                "event_id": str(event_id),
                "index": index,
                "leaf": canonical_json(body).decode(),
                "proof": tree.encode(proof),
            }
        )
    return out
