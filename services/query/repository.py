"""SQL of the read side. Current totals come from the projection (ledger.totals); as_of/known_at
reads sum the time-travel rollups (ledger.rollups: whole days and hours) and the contributions
of the partial hours, through their (operation_id, occurred|recorded) indexes.

A void's contribution row carries its target's ``occurred_at`` and the later of the two
``recorded_at``s (`schemas.tally.Removal`), so ``as_of`` (by occurred_at) drops a voided event
whenever the event itself is in range, and ``known_at`` (by recorded_at) drops it only once
both the event and the void were recorded (never a negative count).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas.tally import METRICS
from services.common import rollup

# group_by name -> column. `item` is the metric's detail: substance for drug wraps, age band for
# arrests; metrics with no finer detail fall in the group whose item is null.
DIMENSIONS: Mapping[str, str] = {"area": "area", "unit": "unit", "day": "day", "item": "detail"}

# asyncpg is untyped here: a Connection or a pool's proxy of one.
Connection = Any


@dataclass(frozen=True, slots=True)
class TotalsQuery:
    """What a totals read asks: which operation, grouped how, up to which instants."""

    operation_id: str
    group_by: tuple[str, ...] = ()
    as_of: datetime | None = None
    known_at: datetime | None = None

    @property
    def time_travel(self) -> bool:
        return self.as_of is not None or self.known_at is not None


@dataclass(frozen=True, slots=True)
class TotalsResult:
    """Every metric (zeros included), the groups that sum to them, and the chain position read."""

    metrics: dict[str, int]
    groups: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0  # the operation's chain head seq: grows with every applied event


def zero_metrics() -> dict[str, int]:
    """Every headline metric at 0."""
    return dict.fromkeys(METRICS, 0)


def _sql(q: TotalsQuery) -> tuple[str, list[Any]]:
    """One statement for the whole read (one round trip, one snapshot): a first row whose
    ``metric`` is NULL carries the operation's version (NULL when unknown), then the sums."""
    dims = [DIMENSIONS[g] for g in q.group_by]
    cols = ", ".join(["metric", *dims])
    if q.time_travel:
        sums, args = _time_travel_sql(q, cols)
    else:
        # Column names come from the fixed DIMENSIONS map above, never from the request.
        sums, args = (
            (
                f"SELECT {cols}, SUM(value)::bigint AS value FROM ledger.totals "  # noqa: S608
                f"WHERE operation_id = $1 GROUP BY {cols} HAVING SUM(value) <> 0"
            ),
            [q.operation_id],
        )
    nulls = ", ".join(f"NULL::{_COLUMN_TYPES[c]} AS {c}" for c in ["metric", *dims])
    # Only column names from DIMENSIONS and their fixed types are interpolated.
    version = (
        f"SELECT {nulls}, (SELECT seq FROM ledger.chain_heads WHERE operation_id = $1) AS value"  # noqa: S608
    )
    return f"{version} UNION ALL ({sums})", args


_COLUMN_TYPES: Mapping[str, str] = {
    "metric": "text", "area": "text", "unit": "text", "day": "date", "detail": "text",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Bound:
    """One timeline's bound ``ts <= at`` as the rollups can answer it: whole days before
    ``day``, plus or minus the whole hours between ``day`` and ``hour``, plus or minus the
    partial hour between ``hour`` and ``at``. ``hour`` is the hour boundary nearest ``at`` and
    ``day`` the midnight (UTC) nearest ``hour``, so at most 12 hours of hour rows and 30 minutes
    of contributions are read, whatever the instant (never a whole day's hours or a whole hour's
    events)."""

    at: datetime
    day: datetime
    hour: datetime


def _bound(at: datetime) -> _Bound:
    hour = rollup.bucket("hour", at)
    if at - hour > _HALF_HOUR:
        hour += _HOUR
    day = rollup.bucket("day", hour)
    if hour - day > _HALF_DAY:
        day += _DAY
    return _Bound(at, day, hour)


_HOUR, _HALF_HOUR = timedelta(hours=1), timedelta(minutes=30)
_DAY, _HALF_DAY = timedelta(days=1), timedelta(hours=12)


def _time_travel_sql(q: TotalsQuery, cols: str) -> tuple[str, list[Any]]:
    """Contributions with occurred_at <= A and recorded_at <= K, summed exactly from signed
    parts (an absent instant is +infinity; the rollups are in services.common.rollup).

    Each bound splits as ``[ts < day] + s1 [day..hour) + s2 [hour..at]`` (`_Bound`; s1 and s2
    are -1 when the range runs backwards, i.e. ``hour`` is before ``day`` or after ``at``).
    The product of the two splits, term by term:

    1. day rollup rows, occurred before A's ``day`` and recorded before K's ``day``;
    2. hour rollup rows, occurred in A's hour range (signed) and recorded before K's ``hour``;
    3. hour rollup rows, recorded in K's hour range (signed) and occurred before A's ``day``;
    4. contributions occurred in A's partial hour (signed), recorded by K;
    5. contributions recorded in K's partial hour (signed), occurred before A's ``hour``.

    Every contribution is counted with total weight 1 if it is in the region and 0 otherwise,
    because the rollup rows are sums of the same contributions.
    """
    args: list[Any] = [q.operation_id]

    def p(value: datetime) -> str:
        args.append(value)
        return f"${len(args)}"

    a = None if q.as_of is None else _bound(q.as_of)
    k = None if q.known_at is None else _bound(q.known_at)
    a_day, a_hour = (None, None) if a is None else (p(a.day), p(a.hour))
    k_day, k_hour = (None, None) if k is None else (p(k.day), p(k.hour))

    def where(*conditions: str | None) -> str:
        return " AND ".join(["operation_id = $1", *(c for c in conditions if c)])

    def before(column: str, bound: str | None) -> str | None:
        return None if bound is None else f"{column} < {bound}"

    def hours(column: str, b: _Bound, day: str, hour: str) -> tuple[int, str] | None:
        """[day, hour) with sign +1, or [hour, day) with sign -1; None when empty."""
        if b.hour == b.day:
            return None
        lo, hi = (day, hour) if b.hour > b.day else (hour, day)
        return (1 if b.hour > b.day else -1), f"{column} >= {lo} AND {column} < {hi}"

    def partial(column: str, b: _Bound, hour: str) -> tuple[int, str]:
        """[hour, at] with sign +1, or (at, hour) with sign -1."""
        at = p(b.at)
        if b.hour <= b.at:
            return 1, f"{column} >= {hour} AND {column} <= {at}"
        return -1, f"{column} > {at} AND {column} < {hour}"

    rollups, contributions = "ledger.rollups", "ledger.contributions"
    parts: list[tuple[int, str, str, str]] = [
        (1, rollups, "value", where(
            "grain = 'day'", before("occurred_bucket", a_day), before("recorded_bucket", k_day))),
    ]  # fmt: skip
    if a is not None and a_day is not None and a_hour is not None:
        if (span := hours("occurred_bucket", a, a_day, a_hour)) is not None:
            parts.append((span[0], rollups, "value", where(
                "grain = 'hour'", span[1], before("recorded_bucket", k_hour))))  # fmt: skip
        sign, cond = partial("occurred_at", a, a_hour)
        parts.append((sign, contributions, "delta", where(
            cond, None if k is None else f"recorded_at <= {p(k.at)}")))  # fmt: skip
    if k is not None and k_day is not None and k_hour is not None:
        if (span := hours("recorded_bucket", k, k_day, k_hour)) is not None:
            parts.append((span[0], rollups, "value", where(
                "grain = 'hour'", span[1], before("occurred_bucket", a_day))))  # fmt: skip
        sign, cond = partial("recorded_at", k, k_hour)
        parts.append((sign, contributions, "delta", where(
            cond, before("occurred_at", a_hour))))  # fmt: skip
    # Only constants and $n placeholders are interpolated; column names come from DIMENSIONS.
    union = " UNION ALL ".join(
        f"SELECT {cols}, {'' if sign > 0 else '-'}{value} AS value"  # noqa: S608
        f" FROM {source} WHERE {cond}"
        for sign, source, value, cond in parts
    )
    sql = (
        f"SELECT {cols}, SUM(value)::bigint AS value FROM ({union}) AS parts "  # noqa: S608
        f"GROUP BY {cols} HAVING SUM(value) <> 0"
    )
    return sql, args


def _json_key(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return value


def _fold(
    rows: Iterable[Mapping[str, Any]], group_by: Sequence[str]
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    metrics = zero_metrics()
    groups: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in rows:
        metric, value = row["metric"], int(row["value"])
        metrics[metric] = metrics.get(metric, 0) + value
        if group_by:
            key = tuple(_json_key(row[DIMENSIONS[g]]) or None for g in group_by)
            groups.setdefault(key, zero_metrics())
            groups[key][metric] = groups[key].get(metric, 0) + value
    out = [
        {**dict(zip(group_by, key, strict=True)), "metrics": values}
        for key, values in sorted(groups.items(), key=lambda kv: tuple(str(k or "") for k in kv[0]))
    ]
    return metrics, out


async def operation_version(conn: Connection, operation_id: str) -> int | None:
    """The operation's chain head seq, or None when no event of it was ever applied."""
    seq: int | None = await conn.fetchval(
        "SELECT seq FROM ledger.chain_heads WHERE operation_id = $1", operation_id
    )
    return seq


async def read_totals(conn: Connection, q: TotalsQuery) -> TotalsResult | None:
    """Totals of one operation, from one snapshot (one statement); None if the operation is
    unknown."""
    sql, args = _sql(q)
    rows = await conn.fetch(sql, *args)
    head = next((r for r in rows if r["metric"] is None), None)
    if head is None or head["value"] is None:
        return None
    metrics, groups = _fold((r for r in rows if r["metric"] is not None), q.group_by)
    return TotalsResult(metrics, groups, int(head["value"]))


async def list_operations(conn: Connection, only: Sequence[str] | None) -> list[dict[str, Any]]:
    """Operations (all, or those in ``only``) with their headline totals from the projection."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        heads = await conn.fetch(
            "SELECT h.operation_id, h.seq, h.first_at, h.updated_at, o.title, o.areas,"
            " o.planned_start, o.planned_end, o.status, o.closed_at"
            " FROM ledger.chain_heads AS h"
            " LEFT JOIN ledger.operations AS o ON o.operation_id = h.operation_id"
            " WHERE $1::text[] IS NULL OR h.operation_id = ANY($1::text[])"
            " ORDER BY h.operation_id",
            None if only is None else list(only),
        )
        sums = await conn.fetch(
            "SELECT operation_id, metric, SUM(value)::bigint AS value FROM ledger.totals "
            "WHERE $1::text[] IS NULL OR operation_id = ANY($1::text[]) "
            "GROUP BY operation_id, metric",
            None if only is None else list(only),
        )
    by_op: dict[str, dict[str, int]] = {}
    for row in sums:
        metrics = by_op.setdefault(row["operation_id"], zero_metrics())
        metrics[row["metric"]] = metrics.get(row["metric"], 0) + int(row["value"])
    return [
        {
            "operation_id": h["operation_id"],
            "events": h["seq"],
            "first_event_at": h["first_at"].isoformat(),
            "last_change_at": h["updated_at"].isoformat(),
            "metrics": by_op.get(h["operation_id"], zero_metrics()),
            **_record_fields(h),
        }
        for h in heads
    ]


def _record_fields(h: Mapping[str, Any]) -> dict[str, Any]:
    """Title, areas, planned window and status; an implicit operation's title is its slug."""
    if h["title"] is None:
        return {"title": h["operation_id"], "status": "implicit", "areas": [],
                "planned_start": None, "planned_end": None, "closed_at": None}  # fmt: skip
    status = h["status"]
    if status == "planned" and datetime.now(UTC) >= h["planned_start"]:
        status = "active"
    return {
        "title": h["title"],
        "status": status,
        "areas": list(h["areas"]),
        "planned_start": h["planned_start"].isoformat(),
        "planned_end": h["planned_end"].isoformat(),
        "closed_at": None if h["closed_at"] is None else h["closed_at"].isoformat(),
    }


async def read_freshness(conn: Connection, consumer_group: str, topic: str) -> dict[str, Any]:
    """Per partition: last applied offset, lag behind the highwater, newest applied event."""
    rows = await conn.fetch(
        "SELECT partition, last_offset, highwater, last_event_at, updated_at, now() AS read_at "
        "FROM ledger.consumer_offsets WHERE consumer_group = $1 AND topic = $2 ORDER BY partition",
        consumer_group,
        topic,
    )
    partitions = []
    lags: list[int] = []
    for r in rows:
        lag = None if r["highwater"] is None else max(r["highwater"] - r["last_offset"] - 1, 0)
        if lag is not None:
            lags.append(lag)
        partitions.append(
            {
                "partition": r["partition"],
                "last_offset": r["last_offset"],
                "highwater": r["highwater"],
                "lag": lag,
                "last_event_at": _iso(r["last_event_at"]),
                "updated_at": _iso(r["updated_at"]),
            }
        )
    event_times = [r["last_event_at"] for r in rows if r["last_event_at"] is not None]
    return {
        "consumer_group": consumer_group,
        "topic": topic,
        "lag": sum(lags) if rows else None,
        "last_event_at": _iso(max(event_times)) if event_times else None,
        "partitions": partitions,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def ping(conn: Connection) -> None:
    """Raise unless the database answers."""
    await conn.fetchval("SELECT 1 FROM ledger.chain_heads LIMIT 1")
