"""The isolation rule: transient failures raise, refused records go to the DLQ alone."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from services.ledger.apply import Failure, apply_batch, apply_retrying, classify
from services.ledger.records import Poison, PreparedBatch, PreparedRecord
from services.ledger.writer import BatchResult


def record(partition: int, offset: int) -> PreparedRecord:
    return PreparedRecord(partition, offset, f"op-{partition}", (), f"v{offset}".encode())


class FakeWriter:
    """Refuses (check violation) any batch holding a record at a bad position."""

    def __init__(self, bad: set[tuple[int, int]], error: BaseException | None = None) -> None:
        self.bad = bad
        self.error = error
        self.applied: list[tuple[int, int]] = []
        self.poisoned: list[tuple[int, int, str]] = []
        self.writes = 0

    async def write(self, batch: PreparedBatch, *, highwater: Any = None) -> BatchResult:
        self.writes += 1
        if any((r.partition, r.offset) in self.bad for r in batch.records):
            raise self.error or asyncpg.CheckViolationError("new row violates check constraint")
        self.applied += [(r.partition, r.offset) for r in batch.records]
        self.poisoned += [(p.partition, p.offset, p.reason) for p in batch.poison]
        return BatchResult(applied=len(batch.records), poison=list(batch.poison),
                           last_offsets=batch.last_offsets)  # fmt: skip


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (asyncpg.CharacterNotInRepertoireError("invalid byte sequence 0x00"), Failure.REFUSED),
        (asyncpg.CheckViolationError("check"), Failure.REFUSED),
        (asyncpg.ProgramLimitExceededError("index row size"), Failure.REFUSED),
        (asyncpg.UniqueViolationError("dup"), Failure.UNKNOWN),  # a concurrent writer's race
        (asyncpg.SerializationError("serialize"), Failure.TRANSIENT),
        (asyncpg.DeadlockDetectedError("deadlock"), Failure.TRANSIENT),
        (asyncpg.AdminShutdownError("shutdown"), Failure.TRANSIENT),
        (asyncpg.QueryCanceledError("statement timeout"), Failure.TRANSIENT),
        (asyncpg.LockNotAvailableError("lock"), Failure.TRANSIENT),
        (asyncpg.ConnectionDoesNotExistError("gone"), Failure.TRANSIENT),
        (asyncpg.InterfaceError("closed"), Failure.TRANSIENT),
        (ConnectionRefusedError(111, "refused"), Failure.TRANSIENT),
        (TimeoutError(), Failure.TRANSIENT),
        (RuntimeError("a bug"), Failure.UNKNOWN),
    ],
)
def test_classify(exc: BaseException, kind: Failure) -> None:
    assert classify(exc) is kind


async def test_a_refused_record_is_dead_lettered_alone_and_the_rest_applied_in_order() -> None:
    records = [record(0, o) for o in range(10)] + [record(1, o) for o in range(5)]
    writer = FakeWriter({(0, 6)})
    sent: list[tuple[Poison, bytes | None]] = []

    async def dead_letter(p: Poison, key: bytes | None) -> None:
        sent.append((p, key))

    result = await apply_batch(
        writer,  # type: ignore[arg-type]
        PreparedBatch(records=list(reversed(records))),
        dead_letter=dead_letter,
    )
    assert [(p.partition, p.offset, p.value, k) for p, k in sent] == [(0, 6, b"v6", b"op-0")]
    assert "CheckViolationError" in sent[0][0].reason
    assert sorted(writer.applied) == sorted(
        (r.partition, r.offset) for r in records if r.offset != 6 or r.partition
    )
    assert [(p, o) for p, o, _ in writer.poisoned] == [(0, 6)]
    # within a partition, records were written in log order around the refused one
    zero = [o for p, o in writer.applied if p == 0]
    assert zero == sorted(zero)
    assert result.applied == 14 and len(result.poison) == 1
    assert result.last_offsets == {0: 9, 1: 4}


async def test_a_transient_failure_raises_for_the_caller_to_retry() -> None:
    writer = FakeWriter({(0, 1)}, asyncpg.SerializationError("could not serialize"))
    with pytest.raises(asyncpg.SerializationError):
        await apply_batch(writer, PreparedBatch(records=[record(0, 0), record(0, 1)]))  # type: ignore[arg-type]
    assert writer.applied == [] and writer.writes == 1


async def test_an_unknown_failure_counts_as_refused_only_when_it_repeats() -> None:
    writer = FakeWriter({(0, 1)}, RuntimeError("always the same"))
    result = await apply_batch(writer, PreparedBatch(records=[record(0, 0), record(0, 1)]))  # type: ignore[arg-type]
    assert writer.applied == [(0, 0)] and [(p, o) for p, o, _ in writer.poisoned] == [(0, 1)]
    assert len(result.poison) == 1


async def test_an_unknown_failure_that_changes_is_retried_by_the_caller() -> None:
    class Flaky(FakeWriter):
        async def write(self, batch: PreparedBatch, *, highwater: Any = None) -> BatchResult:
            self.writes += 1
            raise RuntimeError(f"attempt {self.writes}")

    with pytest.raises(RuntimeError, match="attempt 2"):
        await apply_batch(Flaky(set()), PreparedBatch(records=[record(0, 0)]))  # type: ignore[arg-type]


class FailingFirst(FakeWriter):
    """Raises ``error`` on its first ``failures`` writes, then applies."""

    def __init__(self, failures: int, error: BaseException) -> None:
        super().__init__(set())
        self.failures = failures
        self.failure = error

    async def write(self, batch: PreparedBatch, *, highwater: Any = None) -> BatchResult:
        if self.writes < self.failures:
            self.writes += 1
            raise self.failure
        return await super().write(batch, highwater=highwater)


async def test_a_rebuild_batch_failing_transiently_is_retried_until_it_commits() -> None:
    writer = FailingFirst(3, asyncpg.DeadlockDetectedError("deadlock detected"))
    batch = PreparedBatch(records=[record(0, 0), record(1, 0)])
    result = await apply_retrying(
        writer,  # type: ignore[arg-type]
        batch, retry_for_s=5, retry_initial_s=0.001, retry_max_s=0.002,
    )  # fmt: skip
    assert writer.writes == 4 and writer.applied == [(0, 0), (1, 0)]
    assert result.applied == 2 and writer.poisoned == []  # never dead-lettered


async def test_a_rebuild_gives_up_on_a_transient_failure_after_its_bound() -> None:
    writer = FailingFirst(10_000, asyncpg.LockNotAvailableError("lock timeout"))
    with pytest.raises(asyncpg.LockNotAvailableError):
        await apply_retrying(
            writer,  # type: ignore[arg-type]
            PreparedBatch(records=[record(0, 0)]), retry_for_s=0.05, retry_initial_s=0.001,
            retry_max_s=0.01,
        )  # fmt: skip
    assert 3 <= writer.writes < 60 and writer.applied == []


async def test_a_rebuild_does_not_retry_a_failure_that_is_not_transient() -> None:
    class Changing(FakeWriter):
        async def write(self, batch: PreparedBatch, *, highwater: Any = None) -> BatchResult:
            self.writes += 1
            raise RuntimeError(f"attempt {self.writes}")

    writer = Changing(set())
    with pytest.raises(RuntimeError, match="attempt 2"):
        await apply_retrying(writer, PreparedBatch(records=[record(0, 0)]), retry_for_s=5)  # type: ignore[arg-type]
    assert writer.writes == 2
