"""PostgreSQL access shared by the services: pools, and the names all of them agree on."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

# The ledger's tables live in this schema; `opsledger rebuild` builds a shadow schema of the same
# shape and can swap it in atomically (ALTER SCHEMA ... RENAME) while readers keep reading.
LEDGER_SCHEMA = "ledger"
# The aggregator NOTIFYs this channel, with the operation id as payload, in each batch's
# transaction; Postgres delivers it on commit, which drives the live stream.
TOTALS_CHANNEL = "opsledger_totals"
# The swap lock that guards the live schema is `services.ledger.schema.LEDGER_SWAP_LOCK`.


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout: float = 30.0,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool whose connections decode json/jsonb to Python objects."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        init=_init_connection,
        **kwargs,
    )
    assert pool is not None
    return pool


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """A single connection with the same codecs as the pool's."""
    conn = await asyncpg.connect(dsn, **kwargs)
    await _init_connection(conn)
    return conn
