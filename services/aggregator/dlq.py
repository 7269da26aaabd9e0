"""Dead-lettering: a poison record is copied, untouched, to the DLQ topic with why and whence;
an operator replays or discards it (`opsledger dlq`, state in ``dlq.dead_letters``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from services.common.wire import PoisonMessage, decode_submission
from services.ledger import dead_letters
from services.ledger.dead_letters import DeadLetter
from services.ledger.records import Poison

# send(topic, key, value, headers): produce one record and wait for the broker's acknowledgement.
Send = Callable[[str, bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[object]]

MAX_REASON_BYTES = 4096


def dlq_headers(poison: Poison, source_topic: str) -> list[tuple[str, bytes]]:
    """Headers naming the reason and the source position of a poison record."""
    return [
        ("opsledger-reason", poison.reason.encode()[:MAX_REASON_BYTES]),
        ("opsledger-source-topic", source_topic.encode()),
        ("opsledger-source-partition", str(poison.partition).encode()),
        ("opsledger-source-offset", str(poison.offset).encode()),
    ]


async def dead_letter(
    send: Send, dlq_topic: str, source_topic: str, poison: Poison, key: bytes | None
) -> None:
    """Produce the poison record to the dead-letter topic and wait until the broker has it."""
    await send(dlq_topic, key, poison.value, dlq_headers(poison, source_topic))


REPLAY_HEADER = "opsledger-replay-of"


async def replay(
    conn: asyncpg.Connection,
    send: Send,
    topic: str,
    partition: int,
    offset: int,
    by: str,
) -> tuple[DeadLetter, bool]:
    """Re-publish one open dead letter to ``topic``; return it and whether it was sent now.

    Applied exactly once however often this runs: the dead letter is row-locked, sent only while
    it is still open, and marked ``replayed`` (with the new position) in the same transaction.
    Should the process die between the broker's acknowledgement and the commit, the dead letter
    is still open and a second replay sends it again: its events carry the same ``event_id``s,
    so the ledger counts the second copy as a duplicate, never twice.
    """
    async with conn.transaction():
        letter = await dead_letters.lock_open(conn, topic, partition, offset)
        if letter is None:
            raise LookupError(f"no dead letter at {topic} {partition}:{offset}")
        if letter.status != dead_letters.OPEN:
            return letter, False
        key = _operation_key(letter.value)
        header = (REPLAY_HEADER, f"{topic}:{partition}:{offset}".encode())
        meta: Any = await send(topic, key, letter.value, [header])
        await dead_letters.resolve(
            conn, letter, dead_letters.REPLAYED, by, replayed_to=(meta.partition, meta.offset)
        )
    done = await dead_letters.get(conn, topic, partition, offset)
    assert done is not None
    return done, True


async def discard(
    conn: asyncpg.Connection, topic: str, partition: int, offset: int, by: str, note: str
) -> tuple[DeadLetter, bool]:
    """Mark one open dead letter discarded with a note; return it and whether it changed now."""
    async with conn.transaction():
        letter = await dead_letters.lock_open(conn, topic, partition, offset)
        if letter is None:
            raise LookupError(f"no dead letter at {topic} {partition}:{offset}")
        if letter.status != dead_letters.OPEN:
            return letter, False
        await dead_letters.resolve(conn, letter, dead_letters.DISCARDED, by, note=note)
    done = await dead_letters.get(conn, topic, partition, offset)
    assert done is not None
    return done, True


def _operation_key(value: bytes | None) -> bytes | None:
    """The record's key as ingest set it (its operation), so the replay lands in its partition."""
    try:
        return decode_submission(value).operation_id.encode()
    except (PoisonMessage, ValueError, AttributeError):
        return None
