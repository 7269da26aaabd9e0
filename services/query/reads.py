"""The read use-cases behind the routes: scope check, cached read, freshness, access log."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.common.access import require_operation
from services.common.auth import Principal
from services.common.problems import ProblemError
from services.query import repository
from services.query.access_batch import BatchedAccessLog
from services.query.cache import ReadCache
from services.query.repository import TotalsQuery, TotalsResult
from services.query.settings import QuerySettings


class Reads:
    """Everything a read needs, built once per process by the app's lifespan."""

    def __init__(self, pool: asyncpg.Pool, cache: ReadCache, settings: QuerySettings) -> None:
        self.pool = pool
        self.cache = cache
        self.settings = settings
        self.access_log = BatchedAccessLog(pool)

    async def totals(self, q: TotalsQuery) -> TotalsResult:
        """The totals ``q`` asks for (404 if the operation is unknown); no scope check."""

        async def load() -> TotalsResult | None:
            async with self.pool.acquire() as conn:
                return await repository.read_totals(conn, q)

        result = await self.cache.totals(q.operation_id, q, load)
        if result is None:
            raise ProblemError(
                404,
                "Unknown operation",
                detail=f"no event of operation {q.operation_id!r} has been applied",
                kind="unknown-operation",
            )
        return result

    async def freshness(self) -> dict[str, Any]:
        """How far the aggregator has applied the log (cached briefly)."""

        async def load() -> dict[str, Any]:
            async with self.pool.acquire() as conn:
                return await repository.read_freshness(
                    conn, self.settings.consumer_group, self.settings.topic
                )

        return await self.cache.freshness(load)

    async def totals_answer(self, principal: Principal, q: TotalsQuery) -> dict[str, Any]:
        """The JSON answer of a totals read, for a caller whose scope is checked here."""
        require_operation(principal, q.operation_id)
        freshness = await self.freshness()  # read first: the totals are at least this fresh
        result = await self.totals(q)
        await self.log_read(principal, "totals", q.operation_id, query_params(q))
        return answer(q, result, freshness)

    async def log_read(
        self, principal: Principal, action: str, operation_id: str | None, params: dict[str, Any]
    ) -> None:
        """Write this read to the access log, if its rule (services.common.access_log) says so;
        returns once the row is committed."""
        await self.access_log.record(principal, action, operation_id, params)


def query_params(q: TotalsQuery) -> dict[str, Any]:
    """The parameters of ``q`` as JSON."""
    return {
        "group_by": list(q.group_by),
        "as_of": None if q.as_of is None else q.as_of.isoformat(),
        "known_at": None if q.known_at is None else q.known_at.isoformat(),
    }


def answer(q: TotalsQuery, result: TotalsResult, freshness: dict[str, Any]) -> dict[str, Any]:
    """The totals answer shape shared by /totals and the stream."""
    return {
        "operation_id": q.operation_id,
        **query_params(q),
        "version": result.version,
        "metrics": result.metrics,
        "groups": result.groups,
        "freshness": freshness,
    }
