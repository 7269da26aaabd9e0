"""The operation record's status rule: planned -> active at its start -> closed once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.common.operations import OperationError, new_record

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
END = START + timedelta(days=6)


def test_planned_until_its_start_then_active_then_closed_once() -> None:
    record = new_record("op", "Week of action", ["Lambeth"], START, END, by="admin",
                        now=START - timedelta(hours=1))  # fmt: skip
    assert record.status == "planned"
    assert record.current(START).status == "active"
    closed = record.current(START).close("admin", START + timedelta(days=1))
    assert (closed.status, closed.closed_by) == ("closed", "admin")
    assert closed.current(END + timedelta(days=9)).status == "closed"
    with pytest.raises(OperationError, match="already closed"):
        closed.close("admin", END)


def test_window_must_be_ordered_and_zoned() -> None:
    with pytest.raises(ValidationError, match="before planned start"):
        new_record("op", "t", [], END, START, by="admin")
    with pytest.raises(ValidationError, match="UTC offset"):
        new_record("op", "t", [], START.replace(tzinfo=None), END, by="admin")
