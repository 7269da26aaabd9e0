"""The query process's access-log writer: concurrent consultations share one append.

Every logged read must be in the access log before its answer goes out, and the log is one hash
chain: each append locks the chain head until its transaction has committed (a WAL flush), so
appends of every reader in every process run one after another. Appended one by one, N
concurrent auditors each wait for up to N-1 others' commits. Here the consultations that arrive
while an append is committing are gathered and appended together by the next one (consecutive
links, one head lock, one commit: `access_log.append`), and each read still answers only after
the commit that holds its row. Same rows, same chain, same rule (`access_log.is_logged`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import asyncpg

from services.common import access_log
from services.common.access_log import Consultation
from services.common.auth import Principal

#: Rows per append at most (one statement's arrays).
MAX_BATCH = 500


class BatchedAccessLog:
    """Appends consultations to the access log, gathering those that wait into one append."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._waiting: list[tuple[Consultation, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(
        self,
        principal: Principal,
        action: str,
        operation_id: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> int | None:
        """The row's id once committed, or None when the rule says this read is not logged."""
        if not access_log.is_logged(principal, action):
            return None
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((Consultation.of(principal, action, operation_id, params), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="opsledger-access-log")
        # A reader that goes away does not take its neighbours' append down with it.
        return await asyncio.shield(done)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                async with self.pool.acquire() as conn:
                    ids = await access_log.append(conn, [entry for entry, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                        done.exception()  # retrieved: a waiter that left must not log it
                continue
            except BaseException:  # cancelled (shutdown): nobody is answered unlogged
                for _, done in [*batch, *self._waiting]:
                    done.cancel()
                self._waiting = []
                raise
            for (_, done), row_id in zip(batch, ids, strict=True):
                if not done.done():
                    done.set_result(row_id)
