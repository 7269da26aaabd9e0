"""Each operation's tree in PostgreSQL: grown in the batch's transaction, read for proofs.

`grow` is the writer's one call: inside the batch transaction, after the chain heads are
locked, it reads each operation's frontier (at most one node per level) and inserts the nodes
that the batch's events complete, two round trips per batch whatever its size. Reads
(`root`, `inclusion`, `consistency`) fetch only the O(log n) nodes a proof folds.
"""

from __future__ import annotations

import base64
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from services.common.db import LEDGER_SCHEMA
from services.tlog import merkle
from services.tlog.merkle import NodeGetter, NodeKey

_SQL = {
    "nodes": "SELECT x.level, x.idx, n.hash"
    " FROM unnest($2::smallint[], $3::bigint[]) AS x(level, idx)"
    " JOIN {s}.merkle_nodes AS n ON n.operation_id = $1 AND n.level = x.level AND n.idx = x.idx",
    "frontiers": "SELECT x.op, x.level, x.idx, n.hash"
    " FROM unnest($1::text[], $2::smallint[], $3::bigint[]) AS x(op, level, idx)"
    " LEFT JOIN {s}.merkle_nodes AS n"
    " ON n.operation_id = x.op AND n.level = x.level AND n.idx = x.idx",
    "size": "SELECT seq FROM {s}.chain_heads WHERE operation_id = $1",
    "leaf": "SELECT seq, body FROM {s}.events WHERE operation_id = $1 AND event_id = $2",
}


#: The columns of ``merkle_nodes`` rows as `grow_leaves` writes them.
NODE_COLUMNS = ("operation_id", "level", "idx", "hash")

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _sql(name: str, schema: str) -> str:
    """A statement on ``schema``'s tables (a plain identifier: it is spliced, not bound)."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return _SQL[name].replace("{s}", schema)


class TreeCorrupt(RuntimeError):
    """A node the tree needs is missing: the stored tree does not match the chain."""


@dataclass(frozen=True, slots=True)
class Leaf:
    """One new leaf: the operation, its chain position (1-based) and its bytes."""

    operation_id: str
    seq: int
    data: bytes


class Chained(Protocol):
    """What the writer knows of a newly chained event (`ChainedEvent` of the batch plan)."""

    @property
    def seq(self) -> int: ...
    @property
    def event(self) -> Any: ...  # .operation_id and .body_json (canonical bytes, as hashed)


async def grow(
    conn: asyncpg.Connection, chained: Iterable[Chained], schema: str = LEDGER_SCHEMA
) -> None:
    """The writer's hook: add a batch's newly chained events to their operations' trees.

    Each leaf is the event's body as canonical JSON, the very bytes its chain hash covers.
    """
    leaves = [Leaf(c.event.operation_id, c.seq, c.event.body_json) for c in chained]
    await grow_leaves(conn, leaves, schema)


async def grow_leaves(
    conn: asyncpg.Connection, leaves: Iterable[Leaf], schema: str = LEDGER_SCHEMA
) -> None:
    """Append leaves to their operations' trees (inside the batch's transaction).

    Leaves of one operation must be consecutive from its current size + 1; the chain head lock
    the writer holds is what keeps two writers from growing the same tree.
    """
    by_op: dict[str, list[Leaf]] = defaultdict(list)
    for leaf in leaves:
        by_op[leaf.operation_id].append(leaf)
    if not by_op:
        return
    sizes = {}
    keys: list[tuple[str, int, int]] = []
    for op, items in by_op.items():
        items.sort(key=lambda x: x.seq)
        sizes[op] = items[0].seq - 1
        keys += [(op, lvl, idx) for lvl, idx in merkle.frontier_keys(sizes[op])]
    found: dict[tuple[str, int, int], bytes | None] = {}
    if keys:
        rows = await conn.fetch(_sql("frontiers", schema), *map(list, zip(*keys, strict=True)))
        found = {(r["op"], r["level"], r["idx"]): r["hash"] for r in rows}
    new: list[tuple[str, int, int, bytes]] = []
    for op, items in by_op.items():
        size = sizes[op]
        if [x.seq for x in items] != list(range(size + 1, size + 1 + len(items))):
            raise ValueError(f"leaves of {op} are not consecutive from {size + 1}")
        frontier = [found.get((op, lvl, idx)) for lvl, idx in merkle.frontier_keys(size)]
        if any(h is None for h in frontier):
            raise TreeCorrupt(f"the tree of {op} has no frontier for size {size}")
        growth = merkle.append(
            size, [h for h in frontier if h is not None], (x.data for x in items)
        )
        new += [(op, lvl, idx, h) for lvl, idx, h in growth.nodes]
    # Binary COPY: about two nodes per event, and the arrays an unnest insert needs cost
    # asyncpg more to encode than COPY's rows (bench/pg_ceiling.py measures the same for
    # events); the same rows, the same constraints, the same transaction.
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    await conn.copy_records_to_table(
        "merkle_nodes", schema_name=schema, columns=NODE_COLUMNS, records=new
    )


async def nodes(
    conn: asyncpg.Connection,
    operation_id: str,
    keys: Iterable[NodeKey],
    schema: str = LEDGER_SCHEMA,
) -> NodeGetter:
    """A getter over the stored nodes ``keys`` of one tree (raises TreeCorrupt on a gap)."""
    wanted = sorted(set(keys))
    got: dict[NodeKey, bytes] = {}
    if wanted:
        rows = await conn.fetch(
            _sql("nodes", schema), operation_id, [k[0] for k in wanted], [k[1] for k in wanted]
        )
        got = {(r["level"], r["idx"]): bytes(r["hash"]) for r in rows}

    def get(key: NodeKey) -> bytes:
        try:
            return got[key]
        except KeyError:
            raise TreeCorrupt(f"the tree of {operation_id} lacks node {key}") from None

    return get


async def size(conn: asyncpg.Connection, operation_id: str, schema: str = LEDGER_SCHEMA) -> int:
    """The tree's size: the operation's chain length (0 when it has no events)."""
    seq = await conn.fetchval(_sql("size", schema), operation_id)
    return int(seq or 0)


async def compute(
    conn: asyncpg.Connection, operation_id: str, fn: Any, schema: str = LEDGER_SCHEMA
) -> Any:
    get = await nodes(conn, operation_id, merkle.needed(fn), schema)
    return fn(get)


async def root(
    conn: asyncpg.Connection, operation_id: str, at: int, schema: str = LEDGER_SCHEMA
) -> bytes:
    """The root of the operation's tree at size ``at``."""
    return bytes(await compute(conn, operation_id, lambda g: merkle.root(g, at), schema))


async def inclusion(
    conn: asyncpg.Connection, operation_id: str, index: int, at: int, schema: str = LEDGER_SCHEMA
) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of size ``at``."""
    return list(
        await compute(conn, operation_id, lambda g: merkle.inclusion_proof(g, index, at), schema)
    )


async def consistency(
    conn: asyncpg.Connection, operation_id: str, size1: int, size2: int, schema: str = LEDGER_SCHEMA
) -> list[bytes]:
    """The proof that the tree at ``size2`` extends the one at ``size1``."""
    return list(
        await compute(
            conn, operation_id, lambda g: merkle.consistency_proof(g, size1, size2), schema
        )
    )


async def leaf_of(
    conn: asyncpg.Connection, operation_id: str, event_id: Any, schema: str = LEDGER_SCHEMA
) -> tuple[int, dict[str, Any]] | None:
    """(leaf index, stored body) of an event of the operation, or None."""
    row = await conn.fetchrow(_sql("leaf", schema), operation_id, event_id)
    return None if row is None else (int(row["seq"]) - 1, row["body"])


def encode(hashes: Sequence[bytes]) -> list[str]:
    """Hashes as base64 strings, the spelling of checkpoints and of every proof response."""
    return [base64.b64encode(h).decode() for h in hashes]
