"""The time-travel rollup: contributions summed per operation, bucket pair and tally row.

``ledger.rollups`` holds, for two grains (``hour`` and ``day``, UTC buckets), the sum of
``contributions.delta`` per (operation, occurred bucket, recorded bucket, metric, detail, area,
unit, day). It is a pure function of ``ledger.contributions``: the writer adds each batch's
contributions in the same transaction (`ROLLUP_UPSERT` over the batch's contribution rows), and a
bulk load or a migration builds it with `build_sql` from the table.

An ``as_of`` / ``known_at`` read (occurred_at <= A and recorded_at <= K) is then exact to the
event from signed parts (services.query.repository): each instant is split at the hour boundary
nearest it and the midnight nearest that, so a read sums the day rows before both midnights, plus
or minus at most 12 hours of hour rows per timeline, plus or minus at most 30 minutes of
contributions per timeline (read through the contributions' own time indexes). Subtracting is
as exact as adding, because every rollup row is a sum of the same contribution rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

GRAINS: Final = ("hour", "day")

#: The rollup's key columns after (operation_id, grain, occurred_bucket, recorded_bucket).
DIMENSION_COLUMNS: Final = ("metric", "detail", "area", "unit", "day")

_KEY = "operation_id, grain, occurred_bucket, recorded_bucket, metric, detail, area, unit, day"


def _select(source: str, where: str = "") -> str:
    """``SELECT`` of rollup rows (both grains) from contribution rows in ``source``."""
    return (
        "SELECT c.operation_id, g.grain,"  # noqa: S608 - source is a constant or a checked name
        " date_trunc(g.grain, c.occurred_at, 'UTC'), date_trunc(g.grain, c.recorded_at, 'UTC'),"
        " c.metric, c.detail, c.area, c.unit, c.day, SUM(c.delta)::bigint"
        f" FROM {source} AS c CROSS JOIN (VALUES ('hour'), ('day')) AS g(grain) {where}"
        " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9"
    )


def upsert_sql(schema: str, source: str) -> str:
    """Add the contribution rows of ``source`` (a table or CTE name) to ``{schema}.rollups``.

    Rows are locked in key order (``ORDER BY``), as the totals upsert does, so two writers
    touching the same rows never deadlock.
    """
    return (
        f"INSERT INTO {schema}.rollups AS r ({_KEY}, value) {_select(source)}"  # noqa: S608
        " ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9"
        f" ON CONFLICT ({_KEY}) DO UPDATE SET value = r.value + EXCLUDED.value"
    )


def build_sql(schema: str, *, one_operation: bool = False) -> str:
    """Fill an empty ``{schema}.rollups`` from ``{schema}.contributions`` (bulk load, backfill);
    with ``one_operation``, only for the operation given as ``$1``.

    The hour rows are summed from the contributions, the day rows from the hour rows (a UTC
    hour lies in one UTC day, so the sums are the same): one pass over the contributions
    instead of one per grain (measured in docs/performance.md, issue 17, third round).
    """
    where = "WHERE c.operation_id = $1" if one_operation else ""
    dims = ", ".join(DIMENSION_COLUMNS)
    return (
        "WITH h AS (SELECT c.operation_id,"  # noqa: S608 - schema is a checked name
        " date_trunc('hour', c.occurred_at, 'UTC') AS occurred_bucket,"
        " date_trunc('hour', c.recorded_at, 'UTC') AS recorded_bucket,"
        f" {', '.join('c.' + d for d in DIMENSION_COLUMNS)}, SUM(c.delta)::bigint AS value"
        f" FROM {schema}.contributions AS c {where} GROUP BY 1, 2, 3, 4, 5, 6, 7, 8)"
        f" INSERT INTO {schema}.rollups ({_KEY}, value)"
        f" SELECT operation_id, 'hour', occurred_bucket, recorded_bucket, {dims}, value FROM h"
        " UNION ALL"
        " SELECT operation_id, 'day', date_trunc('day', occurred_bucket, 'UTC'),"
        f" date_trunc('day', recorded_bucket, 'UTC'), {dims}, SUM(value)::bigint FROM h"
        " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9"
    )


def bucket(grain: str, at: datetime) -> datetime:
    """The start of ``at``'s ``grain`` bucket: PostgreSQL's date_trunc(grain, at, 'UTC')."""
    utc = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return utc.replace(hour=0) if grain == "day" else utc
