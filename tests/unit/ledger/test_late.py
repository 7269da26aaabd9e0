"""The late rule: after an operation closed, only an admin's void with a reason is applied."""

from __future__ import annotations

from typing import Any

from services.common.wire import Submission, encode_submission
from services.ledger.plan import Closure, plan_batch
from services.ledger.records import PreparedRecord, prepare

from .test_plan import OP, RECORDED, fresh, totals, void_of


def at(offset: int, events: list[dict[str, Any]], role: str | None = "field") -> PreparedRecord:
    value = encode_submission(Submission(OP, RECORDED, "pc-1", events, role))
    batch = prepare([(0, offset, value)])
    assert not batch.poison, batch.poison
    return batch.records[0]


def test_an_event_after_the_close_is_late_not_chained_not_counted() -> None:
    before, after = fresh("warrant_executed"), fresh("arrest_made")
    plan = plan_batch([at(5, [before]), at(6, [after])], {}, closures={OP: Closure(5)})
    assert [str(e.event.event_id) for e in plan.events] == [before["event_id"]]
    assert [str(e.event_id) for e in plan.late] == [after["event_id"]]
    assert totals(plan) == {"warrants_executed": 1}


def test_without_a_closure_nothing_is_late() -> None:
    plan = plan_batch([at(6, [fresh("arrest_made")])], {}, closures={})
    assert not plan.late and totals(plan) == {"arrests": 1}


def test_an_admin_void_with_a_reason_after_close_is_applied() -> None:
    target = fresh("warrant_executed")
    plan = plan_batch(
        [at(5, [target]), at(6, [void_of(target)], role="admin")], {}, closures={OP: Closure(5)}
    )
    assert not plan.late
    assert len(plan.events) == 2 and totals(plan) == {}


def test_a_field_void_after_close_is_late() -> None:
    target = fresh("warrant_executed")
    plan = plan_batch(
        [at(5, [target]), at(6, [void_of(target)], role="field")], {}, closures={OP: Closure(5)}
    )
    assert len(plan.late) == 1 and totals(plan) == {"warrants_executed": 1}


def test_a_void_carried_without_a_role_after_close_is_late() -> None:
    target = fresh("warrant_executed")
    plan = plan_batch(
        [at(5, [target]), at(6, [void_of(target)], role=None)], {}, closures={OP: Closure(5)}
    )
    assert len(plan.late) == 1


def test_a_resend_after_close_of_a_counted_event_is_a_duplicate_not_late() -> None:
    event = fresh("warrant_executed")
    plan = plan_batch([at(5, [event]), at(6, [event])], {}, closures={OP: Closure(5)})
    assert not plan.late and plan.duplicates == 1 and totals(plan) == {"warrants_executed": 1}


def test_an_operation_closed_empty_takes_nothing() -> None:
    plan = plan_batch([at(0, [fresh("arrest_made")])], {}, closures={OP: Closure(-1)})
    assert len(plan.late) == 1 and not plan.events
