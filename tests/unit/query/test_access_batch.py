"""The query process's access-log writer: waiting consultations share one append, each read
returns only once its own row is written, and a failed append fails exactly its readers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from services.common import access_log
from services.common.access_log import Consultation
from services.common.auth import Principal
from services.query.access_batch import BatchedAccessLog

AUDITOR = Principal(subject="a-1", role="auditor")
SUPERVISOR = Principal(subject="s-1", role="supervisor", operations=frozenset({"op-1"}))


class FakePool:
    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[object]:
        yield object()


@pytest.fixture
def appends(monkeypatch: pytest.MonkeyPatch) -> list[list[Consultation]]:
    """Every append's rows; each append takes a moment (a commit), ids count up from 1."""
    calls: list[list[Consultation]] = []

    async def append(_conn: Any, entries: Sequence[Consultation]) -> list[int]:
        first = sum(len(c) for c in calls) + 1
        calls.append(list(entries))
        await asyncio.sleep(0.02)
        return list(range(first, first + len(entries)))

    monkeypatch.setattr(access_log, "append", append)
    return calls


async def test_waiting_reads_share_the_next_append_and_get_their_own_row(
    appends: list[list[Consultation]],
) -> None:
    log = BatchedAccessLog(FakePool())  # type: ignore[arg-type]
    first = asyncio.create_task(log.record(AUDITOR, "totals", "op-1", {"n": 0}))
    await asyncio.sleep(0.005)  # its append is committing when the others arrive
    rest = [log.record(AUDITOR, "totals", "op-1", {"n": n}) for n in range(1, 20)]
    ids = await asyncio.gather(first, *rest)
    assert [len(batch) for batch in appends] == [1, 19]  # the first alone, the rest gathered
    assert ids == list(range(1, 21))
    assert [e.params["n"] for batch in appends for e in batch] == list(range(20))


async def test_a_read_the_rule_does_not_log_writes_nothing(
    appends: list[list[Consultation]],
) -> None:
    log = BatchedAccessLog(FakePool())  # type: ignore[arg-type]
    assert await log.record(SUPERVISOR, "totals", "op-1", {}) is None
    assert await log.record(SUPERVISOR, "history", "op-1", {}) == 1  # events: logged for all
    assert [[e.action for e in batch] for batch in appends] == [["history"]]


async def test_a_failed_append_fails_its_readers_and_the_next_append_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0

    async def append(_conn: Any, entries: Sequence[Consultation]) -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        if calls == 2:
            raise ConnectionError("database went away")
        return [calls] * len(entries)

    monkeypatch.setattr(access_log, "append", append)
    log = BatchedAccessLog(FakePool())  # type: ignore[arg-type]
    first = asyncio.create_task(log.record(AUDITOR, "totals", "op-1"))
    await asyncio.sleep(0)
    failing = [asyncio.create_task(log.record(AUDITOR, "totals", "op-1")) for _ in range(3)]
    assert await first == 1
    results = await asyncio.gather(*failing, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await log.record(AUDITOR, "totals", "op-1") == 3
