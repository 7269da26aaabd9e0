"""The transparency log: each operation's Merkle tree (stored subtrees) and signed checkpoints.

Revision ID: 0005
Revises: 0008
Create Date: 2026-11-30

Existing operations get their trees computed here from their chained events (one operation's
bodies in memory at a time), so that the aggregator only ever extends a tree from its frontier.
"""

import hashlib
import json
from typing import Any

from alembic import op
from sqlalchemy.util import await_only

from schemas.canonical import canonical_json

revision = "0005"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Every complete subtree of each operation's RFC 9162 tree: node (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level); level 0 holds leaf hashes, SHA-256(0x00 || body).
-- Written in the batch's transaction with the events; never changed.
CREATE TABLE ledger.merkle_nodes (
    operation_id text     NOT NULL,
    level        smallint NOT NULL CHECK (level BETWEEN 0 AND 62),
    idx          bigint   NOT NULL CHECK (idx >= 0),
    hash         bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (operation_id, level, idx)
);
CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON ledger.merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();

-- Kept outside `ledger` so that a rebuild's schema swap never drops what was signed.
CREATE SCHEMA tlog;

-- Every checkpoint the ledger signed (C2SP tlog-checkpoint as a signed note), append-only.
CREATE TABLE tlog.checkpoints (
    operation_id text        NOT NULL,
    size         bigint      NOT NULL CHECK (size >= 0),
    root         bytea       NOT NULL CHECK (length(root) = 32),
    note         text        NOT NULL,
    key_id       text        NOT NULL,  -- hex of the signing key's 4-byte signed-note key id
    reason       text        NOT NULL CHECK (reason IN ('interval', 'close', 'demand')),
    issued_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operation_id, size)
);
CREATE INDEX checkpoints_issued ON tlog.checkpoints (operation_id, issued_at);
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON tlog.checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON tlog.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

-- The public keys (signed-note verifier keys) the ledger has signed checkpoints with, for
-- GET /v1/keys; the services that read them never hold the private key.
CREATE TABLE tlog.keys (
    key_id        text        PRIMARY KEY,
    verifier_key  text        NOT NULL UNIQUE,
    first_used_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER keys_append_only BEFORE UPDATE OR DELETE ON tlog.keys
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
"""

DOWNGRADE = r"""
DROP SCHEMA tlog CASCADE;
DROP TABLE ledger.merkle_nodes;
"""


def _driver() -> Any:
    op.execute("SELECT 1")  # opens the dialect's transaction, so what follows runs inside it
    driver = op.get_bind().connection.driver_connection
    assert driver is not None, "migrations run over a live asyncpg connection"
    return driver


def subtrees(leaves: list[bytes]) -> list[tuple[int, int, bytes]]:
    """Every complete subtree (level, idx, hash) of the RFC 9162 tree of ``leaves``.

    Written out here rather than imported: a migration is a snapshot and must not change
    when the application's tree code does (tests/unit/tlog checks they agree today).
    """
    out: list[tuple[int, int, bytes]] = []
    edge: list[tuple[int, int, bytes]] = []
    for i, leaf in enumerate(leaves):
        node = (0, i, hashlib.sha256(b"\x00" + leaf).digest())
        out.append(node)
        while edge and edge[-1][0] == node[0]:
            left = edge.pop()
            node = (node[0] + 1, node[1] >> 1, hashlib.sha256(b"\x01" + left[2] + node[2]).digest())
            out.append(node)
        edge.append(node)
    return out


async def backfill(conn: Any, operations: list[str] | None = None) -> None:
    """Compute the tree of each operation that already has events (default: all), from its chain."""
    if operations is None:
        rows = await conn.fetch("SELECT operation_id FROM ledger.chain_heads ORDER BY 1")
        operations = [r["operation_id"] for r in rows]
    for operation_id in operations:
        bodies = await conn.fetch(
            "SELECT body::text AS body FROM ledger.events WHERE operation_id = $1 ORDER BY seq",
            operation_id,
        )
        leaves = [canonical_json(json.loads(b["body"])) for b in bodies]
        await conn.executemany(
            "INSERT INTO ledger.merkle_nodes (operation_id, level, idx, hash)"
            " VALUES ($1, $2, $3, $4)",
            [(operation_id, *node) for node in subtrees(leaves)],
        )


def upgrade() -> None:
    driver = _driver()
    await_only(driver.execute(UPGRADE))
    await_only(backfill(driver))


def downgrade() -> None:
    await_only(_driver().execute(DOWNGRADE))
