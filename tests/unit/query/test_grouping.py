"""Grouped totals: the SQL read for each shape, and groups that add up to the whole."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from schemas.tally import METRICS
from services.query.repository import TotalsQuery, _bound, _fold, _sql


def test_headline_reads_the_projection_and_time_travel_the_rollups() -> None:
    sql, args = _sql(TotalsQuery("op-1", ("area",)))
    assert "FROM ledger.totals" in sql and "GROUP BY metric, area" in sql
    assert "FROM ledger.chain_heads" in sql  # the version, in the same statement
    assert args == ["op-1"]
    t = datetime(2026, 11, 17, 9, 41, tzinfo=UTC)
    sql, args = _sql(TotalsQuery("op-1", ("item",), known_at=t))
    # whole days and hours from the rollups, the partial hour from the contributions: 09:41 is
    # nearer 10:00 than 09:00, so the hours 00:00-10:00 are added and (09:41, 10:00) taken off
    assert "FROM ledger.rollups" in sql and "FROM ledger.contributions" in sql
    assert "recorded_at > $4 AND recorded_at < $3" in sql and "-delta" in sql
    assert "occurred_at" not in sql and "detail" in sql
    day, ten = datetime(2026, 11, 17, tzinfo=UTC), t.replace(hour=10, minute=0)
    assert args == ["op-1", day, ten, t]
    sql, args = _sql(TotalsQuery("op-1", (), as_of=t, known_at=t))
    assert "occurred_at > $6 AND occurred_at < $3" in sql and "recorded_at <= $7" in sql
    assert args == ["op-1", day, ten, day, ten, t, t, t]


@pytest.mark.parametrize(
    ("at", "day", "hour"),
    [
        ("2026-11-17T00:00:00", "2026-11-17T00:00:00", "2026-11-17T00:00:00"),
        ("2026-11-17T09:30:00", "2026-11-17T00:00:00", "2026-11-17T09:00:00"),
        ("2026-11-17T09:30:00.000001", "2026-11-17T00:00:00", "2026-11-17T10:00:00"),
        ("2026-11-17T12:29:59", "2026-11-17T00:00:00", "2026-11-17T12:00:00"),
        ("2026-11-17T12:30:00.5", "2026-11-18T00:00:00", "2026-11-17T13:00:00"),
        ("2026-11-17T23:45:00", "2026-11-18T00:00:00", "2026-11-18T00:00:00"),
        ("2026-11-17T10:15:00+02:00", "2026-11-17T00:00:00", "2026-11-17T08:00:00"),
    ],
)
def test_a_bound_reads_at_most_twelve_hours_and_half_an_hour(at: str, day: str, hour: str) -> None:
    instant = datetime.fromisoformat(at if "+" in at else at + "+00:00")
    b = _bound(instant)
    assert (b.day, b.hour) == (datetime.fromisoformat(day + "+00:00"),
                               datetime.fromisoformat(hour + "+00:00"))  # fmt: skip
    assert abs(b.hour - b.day) <= timedelta(hours=12)
    assert abs(instant - b.hour) <= timedelta(minutes=30)


def test_groups_sum_to_the_whole_with_every_metric_present() -> None:
    d1, d2 = date(2026, 11, 17), date(2026, 11, 18)
    rows = [
        {"metric": "arrests", "area": "Berkshire", "day": d1, "value": 3},
        {"metric": "arrests", "area": "Oxfordshire", "day": d1, "value": 2},
        {"metric": "cash_seized_pence", "area": "Berkshire", "day": d2, "value": 1050},
    ]
    metrics, groups = _fold(rows, ("area", "day"))
    assert set(metrics) == set(METRICS)
    assert metrics["arrests"] == 5 and metrics["cash_seized_pence"] == 1050
    assert [(g["area"], g["day"]) for g in groups] == [
        ("Berkshire", "2026-11-17"),
        ("Berkshire", "2026-11-18"),
        ("Oxfordshire", "2026-11-17"),
    ]
    for metric in METRICS:
        assert sum(g["metrics"][metric] for g in groups) == metrics[metric]


def test_item_group_is_null_for_metrics_without_detail() -> None:
    rows = [
        {"metric": "warrants_executed", "detail": "", "value": 4},
        {"metric": "drug_wraps_seized", "detail": "crack", "value": 9},
    ]
    _, groups = _fold(rows, ("item",))
    assert [(g["item"], g["metrics"]["warrants_executed"]) for g in groups] == [
        (None, 4),
        ("crack", 0),
    ]
