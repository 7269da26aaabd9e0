"""as_of / known_at reads from the rollups equal the sum of the contributions, to the event.

Events (voids among them, some recorded a day late) spread over three days are written by the
aggregator's own writer; then reads at many instants, on whole hours and days, on the exact
instant of an event and anywhere between, must equal the plain sum of the contribution rows with
occurred_at <= as_of and recorded_at <= known_at, grouped the same way. The instants include
each side of the half hours and middays where a read turns from adding the partial hour (and
the day's hours) to subtracting them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.query.repository import DIMENSIONS, TotalsQuery, read_totals

from .ledger import Ledger, make_event, void_of

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 16, 21, 0, tzinfo=UTC)  # crosses two UTC midnights
KINDS = [
    ("warrant_executed", {}),
    ("arrest_made", {"age_band": "adult"}),
    ("arrest_made", {"age_band": "youth"}),
    ("item_seized", {"item": "drug_wrap", "substance": "crack", "quantity": 7}),
    ("item_seized", {"item": "cash", "amount_pence": 2_500, "currency": "GBP"}),
    ("school_visited", {}),
]
AREAS = ["Buckinghamshire", "Berkshire", "Oxfordshire"]


async def _expected(conn: Any, q: TotalsQuery) -> dict[tuple[Any, ...], int]:
    cols = ["metric", *(DIMENSIONS[g] for g in q.group_by)]
    conds, args = ["operation_id = $1"], [q.operation_id]
    if q.as_of is not None:
        args.append(q.as_of)
        conds.append(f"occurred_at <= ${len(args)}")
    if q.known_at is not None:
        args.append(q.known_at)
        conds.append(f"recorded_at <= ${len(args)}")
    rows = await conn.fetch(
        f"SELECT {', '.join(cols)}, SUM(delta) AS v FROM ledger.contributions"  # noqa: S608
        f" WHERE {' AND '.join(conds)} GROUP BY {', '.join(cols)}",
        *args,
    )
    return {tuple(r[c] for c in cols): int(r["v"]) for r in rows if r["v"]}


def _got(result: Any, group_by: tuple[str, ...]) -> dict[tuple[Any, ...], int]:
    if not group_by:
        return {(m,): v for m, v in result.metrics.items() if v}
    out = {}
    for g in result.groups:
        key = tuple(g[name] for name in group_by)
        for m, v in g["metrics"].items():
            if v:
                out[(m, *key)] = v
    return out


def _normalise(rows: dict[tuple[Any, ...], int]) -> dict[tuple[Any, ...], int]:
    """Expected keys as the API gives them: dates as ISO text, empty detail as None."""
    return {
        tuple((k.isoformat() if hasattr(k, "isoformat") else k) or None for k in key): v
        for key, v in rows.items()
    }


async def test_time_travel_reads_equal_the_contributions_summed(ledger: Ledger, op_id: str) -> None:
    rng = random.Random(17)
    written: list[dict[str, Any]] = []
    instants: list[datetime] = []
    for _ in range(60):  # submissions: 1-5 events each, recorded up to 30 h after occurring
        events = []
        for _ in range(rng.randint(1, 5)):
            kind, payload = rng.choice(KINDS)
            occurred = T0 + timedelta(minutes=rng.randint(0, 60 * 60))
            events.append(make_event(op_id, kind, occurred, area=rng.choice(AREAS), **payload))
        latest = max(datetime.fromisoformat(e["occurred_at"]) for e in events)
        if written and rng.random() < 0.3:  # a void of an earlier event, in the same submission
            events.append(void_of(rng.choice(written), latest))
        recorded = latest + timedelta(minutes=rng.choice([0, 1, 59, 61, 600, 1800]))
        await ledger.submit(events, recorded)
        written += [e for e in events if e["type"] != "event_voided"]
        instants += [latest, recorded, recorded - timedelta(microseconds=1)]
    instants += [T0 + timedelta(hours=h) for h in range(0, 80, 3)]  # whole hours and midnights
    # where a read switches from adding to subtracting: half hours (either side), middays
    half = timedelta(minutes=30)
    instants += [T0 + timedelta(hours=h) + half + timedelta(microseconds=d)
                 for h in range(0, 80, 5) for d in (-1, 0, 1)]  # fmt: skip
    instants += [T0 + timedelta(hours=h, minutes=m) for h in (15, 39, 63) for m in (0, 29, 31)]
    instants += [T0 + timedelta(seconds=rng.randint(0, 80 * 3600)) for _ in range(40)]

    pool = ledger.writer.pool
    checked = 0
    async with pool.acquire() as conn:
        for i, instant in enumerate(instants):
            other = rng.choice(instants)
            as_of, known_at = [(instant, None), (None, instant), (instant, other)][i % 3]
            group_by = rng.choice([(), ("area",), ("day",), ("item", "area")])
            q = TotalsQuery(op_id, group_by, as_of=as_of, known_at=known_at)
            result = await read_totals(conn, q)
            assert result is not None
            expected = _normalise(await _expected(conn, q))
            assert _got(result, group_by) == expected, (as_of, known_at, group_by)
            checked += bool(expected)
        # the rollup is exactly the contributions regrouped (what a rebuild's bulk load makes)
        mismatch = await conn.fetchval(
            """SELECT count(*) FROM (
                 SELECT grain, occurred_bucket, recorded_bucket, metric, detail, area, unit, day,
                        value FROM ledger.rollups WHERE operation_id = $1
                 EXCEPT
                 SELECT g.grain, date_trunc(g.grain, occurred_at, 'UTC'),
                        date_trunc(g.grain, recorded_at, 'UTC'), metric, detail, area, unit, day,
                        SUM(delta) FROM ledger.contributions
                        CROSS JOIN (VALUES ('hour'), ('day')) AS g(grain)
                 WHERE operation_id = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8) AS d""",
            op_id,
        )
    assert mismatch == 0
    assert checked > len(instants) // 2  # most reads had something to compare
