"""Applying a batch so that a bad record stops nothing but itself.

Every write of a batch goes through `apply_batch`, the live aggregator's and the rebuild's
alike. A failed transaction is first classified:

* **transient**: the connection, the server or the moment is at fault (SQLSTATE classes 08
  connection, 40 serialization failure / deadlock, 53 resources, 55 lock not available, 57
  shutdown / statement timeout, 58 system, 42 a missing table or privilege, ...; socket errors,
  timeouts). Nothing about the records is wrong: the error is raised, the caller retries the
  batch while its partitions wait.
* **refused**: the database refuses the data itself (class 22 data exception, e.g. a NUL in
  text; class 23 integrity violation; class 54 a program limit such as an index row too big).
  Retrying would fail the same way for ever.
* **unknown**: anything else is tried once more; failing *the same way twice* (same type,
  SQLSTATE and message) makes it refused.

A refused batch is bisected (left half first, so each partition's records stay in log order)
until the record at fault is alone; that record is handed to ``dead_letter`` (the DLQ topic)
and then written as poison, which records it in ``dlq.dead_letters`` and moves the offset past
it in one transaction. Every other record is applied. Halves that commit stay committed: if a
transient error interrupts the isolation, the caller's retry skips them by offset.

What the caller does with a transient failure: the live aggregator holds only the partition
concerned and retries it alone (`services.aggregator.holds`); a rebuild, which must reach the
end of every partition anyway, retries the batch with capped backoff for a bounded time
(`apply_retrying`) rather than abandon hours of replay for a deadlock or a lost connection.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from services.ledger.records import Poison, PreparedBatch, PreparedRecord
from services.ledger.writer import BatchResult, BatchWriter

log = logging.getLogger("opsledger.ledger")


class Failure(enum.Enum):
    TRANSIENT = "transient"
    REFUSED = "refused"
    UNKNOWN = "unknown"


#: SQLSTATE classes whose errors are about the data of the statement (deterministic).
REFUSED_CLASSES: Final = frozenset({"22", "23", "54"})
#: SQLSTATEs of a refused class that a concurrent writer can cause (a race, not the data):
#: tried again before being believed.
RACY_STATES: Final = frozenset({"23505", "23P01"})

#: dead_letter(poison, key): put a refused record on the DLQ topic (the aggregator's producer);
#: None when only the dead-letter table is to know (a rebuild: the live aggregator sent it).
DeadLetter = Callable[[Poison, bytes | None], Awaitable[object]]


def classify(exc: BaseException) -> Failure:
    """Whether ``exc`` (raised by a batch transaction) is transient, refused or unknown."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        if sqlstate in RACY_STATES:
            return Failure.UNKNOWN
        return Failure.REFUSED if sqlstate[:2] in REFUSED_CLASSES else Failure.TRANSIENT
    if isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError | ConnectionError):
        return Failure.TRANSIENT
    if type(exc).__module__.startswith("asyncpg"):  # InterfaceError & co: connection state
        return Failure.TRANSIENT
    return Failure.UNKNOWN


def signature(exc: BaseException) -> tuple[str, str, str]:
    """What "the same way" means: type, SQLSTATE and message."""
    return type(exc).__name__, str(getattr(exc, "sqlstate", "")), str(exc)


def reason(exc: BaseException) -> str:
    """The database's reason, as the dead letter carries it."""
    sqlstate = getattr(exc, "sqlstate", None)
    detail = getattr(exc, "detail", None)
    text = f"refused by the database: {type(exc).__name__}"
    if sqlstate:
        text += f" (SQLSTATE {sqlstate})"
    text += f": {exc}"
    if detail:
        text += f" ({detail})"
    return text


Item = PreparedRecord | Poison


def _batch(items: Sequence[Item]) -> PreparedBatch:
    return PreparedBatch(
        records=[i for i in items if isinstance(i, PreparedRecord)],
        poison=[i for i in items if isinstance(i, Poison)],
    )


def _merge(into: BatchResult, part: BatchResult) -> None:
    into.applied += part.applied
    into.duplicates += part.duplicates
    into.conflicts += part.conflicts
    into.skipped_records += part.skipped_records
    into.poison += part.poison
    into.operations = sorted({*into.operations, *part.operations})
    for p, o in part.last_offsets.items():
        into.last_offsets[p] = max(o, into.last_offsets.get(p, -1))


async def apply_batch(
    writer: BatchWriter,
    batch: PreparedBatch,
    *,
    highwater: Mapping[int, int] | None = None,
    dead_letter: DeadLetter | None = None,
) -> BatchResult:
    """Write ``batch``; a record the database refuses goes to the DLQ alone, the rest applies.

    Raises only for a transient failure (the caller retries the same batch while it waits).
    """

    async def attempt(items: Sequence[Item] | PreparedBatch) -> BatchResult | BaseException:
        """The write's result, or the deterministic failure it hit (transient ones raise)."""
        part = items if isinstance(items, PreparedBatch) else _batch(items)
        try:
            return await writer.write(part, highwater=highwater)
        except Exception as exc:  # noqa: BLE001 - classified below
            first: Exception = exc
        kind = classify(first)
        if kind is Failure.TRANSIENT:
            raise first
        if kind is Failure.UNKNOWN:
            try:
                return await writer.write(part, highwater=highwater)
            except Exception as again:  # noqa: BLE001
                if signature(again) != signature(first):
                    raise again from first  # not the same way twice: let the caller retry
        return first

    async def isolate(items: Sequence[Item], failure: BaseException) -> BatchResult:
        if len(items) == 1:
            only = items[0]
            if isinstance(only, Poison):
                raise failure  # recording poison cannot be refused by its data: not isolable
            poison = Poison(only.partition, only.offset, reason(failure), only.value)
            if dead_letter is not None:
                await dead_letter(poison, only.operation_id.encode())
            done = await attempt([poison])
            if isinstance(done, BaseException):
                raise done
            return done
        out = BatchResult()
        half = len(items) // 2
        for part in (items[:half], items[half:]):
            done = await attempt(part)
            _merge(out, done if isinstance(done, BatchResult) else await isolate(part, done))
        return out

    done = await attempt(batch)
    if isinstance(done, BatchResult):
        return done
    # Each partition's records in log order, so that a half never moves an offset past a record
    # of the other half still to be written.
    items: list[Item] = [*batch.records, *batch.poison]
    items.sort(key=lambda i: (i.partition, i.offset))
    return await isolate(items, done)


async def apply_retrying(
    writer: BatchWriter,
    batch: PreparedBatch,
    *,
    retry_for_s: float,
    retry_initial_s: float = 0.1,
    retry_max_s: float = 5.0,
    dead_letter: DeadLetter | None = None,
) -> BatchResult:
    """`apply_batch`, a transient failure retried with capped backoff for up to ``retry_for_s``.

    Raises the last failure after that, or at once for one that is not transient (a failure
    that changed between two tries: `apply_batch` could not tell what it is).
    """
    deadline = time.monotonic() + retry_for_s
    delay = retry_initial_s
    while True:
        try:
            return await apply_batch(writer, batch, dead_letter=dead_letter)
        except Exception as exc:
            if classify(exc) is not Failure.TRANSIENT or time.monotonic() + delay > deadline:
                raise
            log.warning("batch failed (%r), transient; retrying in %.2f s", exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, retry_max_s)
