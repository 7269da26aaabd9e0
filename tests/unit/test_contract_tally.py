"""The tally rule: contributions per kind and the fold's duplicate and void semantics."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any
from uuid import uuid4

from schemas import example_events, parse_event
from schemas.tally import (
    ALREADY_VOIDED,
    METRICS,
    OF_A_VOID,
    OTHER_OPERATION,
    Conflict,
    Contribution,
    Counted,
    Duplicate,
    FoldState,
    VoidApplied,
    VoidHeld,
    VoidIgnored,
    contribution,
    fact_of,
    fold,
    negate,
)


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


def test_each_decision_of_the_fold_rule() -> None:
    a = ev("warrant_executed")
    own, foreign, again = void(a), void(a, operation_id="another-operation"), void(a)
    state = FoldState()
    assert isinstance(state.add(fact_of(foreign)), VoidHeld)  # target not here yet
    assert state.add(fact_of(a)) == Counted(contribution(a))  # the foreign void is not its own
    assert state.add(fact_of(a)) == Duplicate()
    applied = state.add(fact_of(own))
    assert isinstance(applied, VoidApplied) and applied.removal.void.void_event_id == own.event_id
    assert state.add(fact_of(again)) == VoidIgnored(a.event_id, ALREADY_VOIDED)
    assert state.add(fact_of(void(own))) == VoidIgnored(own.event_id, OF_A_VOID)
    b = ev("warrant_executed")
    state.add(fact_of(b))
    other = void(b, operation_id="op-x")
    assert state.add(fact_of(other)) == VoidIgnored(b.event_id, OTHER_OPERATION)


def test_a_held_void_of_its_own_operation_cancels_on_arrival_with_the_later_time() -> None:
    a = ev("warrant_executed")
    v = void(a)
    early, late = datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC)
    state = FoldState()
    state.add(fact_of(v, recorded_at=late))
    decision = state.add(fact_of(a, recorded_at=early))
    assert isinstance(decision, Counted) and decision.cancelled_by is not None
    removal = decision.cancelled_by
    assert (removal.recorded_at, removal.occurred_at) == (late, a.occurred_at)
    assert removal.contribution == negate(contribution(a))  # type: ignore[arg-type]


def test_a_repeated_id_with_other_content_hash_is_a_conflict() -> None:
    a = ev("warrant_executed")
    state = FoldState()
    state.add(replace(fact_of(a), content_hash="one"))
    assert state.add(replace(fact_of(a), content_hash="two")) == Conflict("one")
    assert state.add(replace(fact_of(a), content_hash="one")) == Duplicate()
