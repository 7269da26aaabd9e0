"""verify and the late rule: past the closure, only a void with a reason may be in the chain."""

from __future__ import annotations

from typing import Any

from services.audit.verify import after_close


def _row(seq: int, offset: int, type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "event_id": f"e{seq}", "kafka_offset": offset,
            "body": {"type": type_, "payload": payload}}  # fmt: skip


def test_events_up_to_the_closure_and_a_correction_after_it_pass() -> None:
    rows = [
        _row(1, 4, "arrest_made", {}),
        _row(2, 5, "warrant_executed", {}),
        _row(3, 9, "event_voided", {"voided_event_id": "x", "reason": "wrong premises"}),
    ]
    assert after_close(rows, 5) == []


def test_a_field_event_chained_after_the_closure_is_named() -> None:
    rows = [_row(1, 5, "arrest_made", {}), _row(2, 6, "arrest_made", {})]
    [diff] = after_close(rows, 5)
    assert (diff.table, diff.event_id, diff.seq) == ("events", "e2", 2)
    assert "offset 6 > 5" in diff.detail


def test_a_void_without_a_reason_after_the_closure_is_named() -> None:
    rows = [_row(1, 7, "event_voided", {"voided_event_id": "x", "reason": "  "})]
    assert [d.event_id for d in after_close(rows, 5)] == ["e1"]


def test_an_operation_closed_empty_takes_only_corrections() -> None:
    assert [d.seq for d in after_close([_row(1, 0, "school_visited", {})], -1)] == [1]
