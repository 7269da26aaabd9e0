"""The events behind a published figure, each with its inclusion proof, in one offline file.

`opsledger prove --operation OP --metric arrests` writes one JSON document: the figure, the
signed checkpoint it is proven against, the ledger's public key, and for every event that
contributed to the figure (voids that removed a contribution included) its leaf, index,
audit path and contribution. `services.tlog.verifier` checks it with the public key alone:
every event is a leaf of the signed tree, and the contributions add up to the figure.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from schemas.tally import METRICS
from services.tlog import checkpoints
from services.tlog.keys import Signer
from services.tlog.proofs import ProofError, events_doc

FORMAT = "opsledger-proofs/1"

_BEHIND = """
    SELECT c.event_id, c.delta FROM ledger.contributions AS c
    JOIN ledger.events AS e ON e.event_id = c.event_id
    WHERE c.operation_id = $1 AND c.metric = $2 AND e.seq <= $3
    ORDER BY e.seq
"""


async def prove_metric(
    conn: asyncpg.Connection, operation_id: str, metric: str, signer: Signer | None
) -> dict[str, Any]:
    """The proofs document of ``metric``; signs a fresh checkpoint first if the tree outgrew it."""
    if metric not in METRICS:
        raise ProofError(422, f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    stored = await checkpoints.latest(conn, operation_id)
    if signer is not None:
        fresh = await checkpoints.issue(conn, operation_id, signer, "demand")
        stored = fresh or stored
    if stored is None:
        raise ProofError(404, f"operation {operation_id!r} has no signed checkpoint")
    rows = await conn.fetch(_BEHIND, operation_id, metric, stored.size)
    entries = await events_doc(conn, operation_id, [r["event_id"] for r in rows], stored.size)
    for entry, row in zip(entries, rows, strict=True):
        entry["delta"] = int(row["delta"])
    return {
        "format": FORMAT,
        "operation_id": operation_id,
        "metric": metric,
        "figure": sum(int(r["delta"]) for r in rows),
        "tree_size": stored.size,
        "checkpoint": stored.note,
        "public_key": None if signer is None else str(signer.public),
        "events": entries,
    }
