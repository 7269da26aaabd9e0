"""Dead-lettering: a poison record is copied, untouched, to the DLQ topic with why and whence."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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
