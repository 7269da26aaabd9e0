"""Grouped totals: the SQL read for each shape, and groups that add up to the whole."""

from __future__ import annotations

from datetime import UTC, date, datetime

from schemas.tally import METRICS
from services.query.repository import TotalsQuery, _fold, _sql


def test_headline_reads_the_projection_and_time_travel_the_rollups() -> None:
    sql, args = _sql(TotalsQuery("op-1", ("area",)))
    assert "FROM ledger.totals" in sql and "GROUP BY metric, area" in sql
    assert args == ["op-1"]
    t = datetime(2026, 11, 17, 9, 41, tzinfo=UTC)
    sql, args = _sql(TotalsQuery("op-1", ("item",), known_at=t))
    # whole days and hours from the rollups, the partial hour from the contributions
    assert "FROM ledger.rollups" in sql and "FROM ledger.contributions" in sql
    assert "recorded_at <= $2" in sql and "occurred_at" not in sql and "detail" in sql
    assert args == ["op-1", t, datetime(2026, 11, 17, tzinfo=UTC), t.replace(minute=0)]
    sql, args = _sql(TotalsQuery("op-1", (), as_of=t, known_at=t))
    assert "occurred_at <= $2" in sql and "recorded_at <= $5" in sql and len(args) == 7


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
