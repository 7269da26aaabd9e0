"""The tally rule: contributions per kind and the fold's duplicate and void semantics."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import uuid4

from schemas import example_events, parse_event
from schemas.tally import METRICS, Contribution, contribution, fold, negate


def ev(kind: str, i: int = 0, **over: Any) -> Any:
    raw = example_events(kind)[i]
    raw["event_id"] = str(uuid4())
    raw.update(over)
    return parse_event(raw)


def void(target: Any, **over: Any) -> Any:
    raw = example_events("event_voided")[0]
    raw["event_id"] = str(uuid4())
    raw["payload"]["voided_event_id"] = str(target.event_id)
    raw.update(over)
    return parse_event(raw)


def test_metric_names_exact() -> None:
    assert METRICS == (
        "warrants_executed",
        "arrests",
        "drug_wraps_seized",
        "mobile_phones_seized",
        "weapons_seized",
        "cash_seized_pence",
        "schools_visited",
        "vulnerable_people_engaged",
        "other_items_seized",
    )


def test_contribution_per_kind() -> None:
    wrap = ev("item_seized", 0)  # 23:30 at -01:00 on the 17th is 00:30 GMT on the 18th
    assert contribution(wrap) == Contribution(
        "drug_wraps_seized",
        "crack",
        120,
        "Buckinghamshire",
        "Stronghold Thames Valley",
        date(2026, 11, 18),
    )
    assert contribution(ev("arrest_made", 1)).detail == "youth"  # type: ignore[union-attr]
    assert contribution(ev("item_seized", 3)).delta == 1_250_000  # type: ignore[union-attr]
    assert contribution(ev("item_seized", 3)).metric == "cash_seized_pence"  # type: ignore[union-attr]
    assert contribution(ev("item_seized", 4)).metric == "other_items_seized"  # type: ignore[union-attr]
    assert contribution(ev("school_visited")).delta == 1  # type: ignore[union-attr]
    assert contribution(ev("event_voided")) is None


def test_day_is_london_local_in_summer() -> None:
    e = ev("warrant_executed", occurred_at="2026-07-01T23:30:00+00:00")
    assert contribution(e).day == date(2026, 7, 2)  # type: ignore[union-attr]


def test_negate() -> None:
    c = contribution(ev("item_seized", 1))
    assert c is not None
    assert negate(c).delta == -c.delta and negate(negate(c)) == c


def test_fold_has_every_metric_and_rows_sum_to_metrics() -> None:
    totals = fold(parse_event(e) for e in example_events())
    assert set(totals.metrics) == set(METRICS)
    assert totals.metrics["mobile_phones_seized"] == 0  # the example void cancels them
    for metric in METRICS:
        assert totals.metrics[metric] == sum(v for k, v in totals.rows.items() if k[0] == metric)
    assert fold([]).metrics == dict.fromkeys(METRICS, 0)


def test_duplicate_id_counted_once_even_with_other_content() -> None:
    a = ev("item_seized", 1)
    twin = parse_event(
        {
            **example_events("item_seized")[1],
            "event_id": str(a.event_id),
            "payload": {"item": "mobile_phone", "quantity": 50},
        }
    )
    assert fold([a, a, twin]).metrics["mobile_phones_seized"] == 3
    assert fold([twin, a]).metrics["mobile_phones_seized"] == 50


def test_void_cancels_before_or_after_and_twice_is_noop() -> None:
    a, b = ev("item_seized", 1), ev("item_seized", 1)
    v1, v2 = void(a), void(a)
    for order in ([a, b, v1], [v1, a, b], [v1, v2, a, b], [a, v1, b, v2]):
        assert fold(order).metrics["mobile_phones_seized"] == 3
        assert fold(order).rows == fold([b]).rows


def test_void_of_a_void_missing_event_or_other_operation_is_noop() -> None:
    a = ev("warrant_executed")
    v = void(a)
    vv = void(v)
    ghost = void(ev("warrant_executed"))
    foreign = void(a, operation_id="another-operation")
    assert fold([a, v, vv]).metrics["warrants_executed"] == 0
    assert fold([a, ghost]).metrics["warrants_executed"] == 1
    assert fold([foreign, a]).metrics["warrants_executed"] == 1
    assert fold([a, foreign]).metrics["warrants_executed"] == 1
