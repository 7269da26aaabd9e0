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


class JsonText(str):
    """JSON text already encoded (e.g. an event's canonical body): stored as it is, not dumped
    again as a JSON string."""


def _json_text(value: Any) -> str:
    return value if isinstance(value, JsonText) else json.dumps(value)


def _encode_json(value: Any) -> bytes:
    return _json_text(value).encode()  # json's binary format is its text


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + _json_text(value).encode()  # jsonb's binary format: version 1, then the text


def _decode_json(data: bytes) -> Any:
    return json.loads(data)


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary formats, so that json and jsonb values can travel by binary COPY (the ledger's
    # writer); a `JsonText` (e.g. an event's canonical body) is stored as its exact text.
    for typ, encoder, decoder in (
        ("json", _encode_json, _decode_json),
        ("jsonb", _encode_jsonb, _decode_jsonb),
    ):
        await conn.set_type_codec(
            typ, encoder=encoder, decoder=decoder, schema="pg_catalog", format="binary"
        )


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
