"""What a summary or the dashboard says about an operation besides its figures: its record
(title, areas, planned window, status), when its events actually happened, and what came after
its close (corrections applied, late events not counted).

An operation that was never created (implicit) has no record: it is shown by its slug.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncpg import Connection

from services.common import operations as ops


@dataclass(frozen=True, slots=True)
class OperationFacts:
    operation_id: str
    record: ops.OperationRecord | None
    first_event_at: datetime | None  # occurred_at of its earliest counted event
    last_event_at: datetime | None
    corrections_after_close: int  # voids recorded after the close (an admin's, with a reason)
    late_events: int  # reached the ledger after the close: recorded, not counted

    @property
    def title(self) -> str:
        return self.operation_id if self.record is None else self.record.title

    def to_dict(self) -> dict[str, Any]:
        """The ``operation`` member of the JSON summary and of the dashboard's list."""
        r = None if self.record is None else self.record.current(datetime.now(UTC))
        return {
            "operation_id": self.operation_id,
            "title": self.title,
            "created": r is not None,
            "status": "implicit" if r is None else r.status,
            "areas": [] if r is None else list(r.areas),
            "planned_start": None if r is None else r.planned_start.isoformat(),
            "planned_end": None if r is None else r.planned_end.isoformat(),
            "first_event_at": _iso(self.first_event_at),
            "last_event_at": _iso(self.last_event_at),
            "closed_at": None if r is None else _iso(r.closed_at),
            "corrections_after_close": self.corrections_after_close,
            "late_events": self.late_events,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _day(value: datetime) -> str:
    return f"{value.astimezone(UTC):%d %B %Y}".lstrip("0")


def header(facts: OperationFacts) -> str:
    """The markdown lines above the bullets: title, then areas, dates and status."""
    lines = [f"# {facts.title}", ""]
    r = facts.record
    if r is None:
        return "\n".join(lines) + "\n"
    parts = []
    if r.areas:
        parts.append(", ".join(r.areas[:-1]) + " and " + r.areas[-1] if len(r.areas) > 1
                     else r.areas[0])  # fmt: skip
    parts.append(f"planned {_day(r.planned_start)} to {_day(r.planned_end)}")
    if facts.first_event_at is not None and facts.last_event_at is not None:
        parts.append(f"events {_day(facts.first_event_at)} to {_day(facts.last_event_at)}")
    status: str = r.current(datetime.now(UTC)).status
    if r.closed_at is not None:
        status = f"closed {_day(r.closed_at)}, {r.closed_at.astimezone(UTC):%H:%M} UTC"
    parts.append(status)
    lines += [" · ".join(parts), ""]
    after = []
    if facts.corrections_after_close:
        n = facts.corrections_after_close
        after.append(f"{n} correction{'s' if n != 1 else ''} applied after the close")
    if facts.late_events:
        n = facts.late_events
        after.append(f"{n} event{'s' if n != 1 else ''} arrived after the close, not counted")
    if after:
        lines += ["; ".join(after) + ".", ""]
    return "\n".join(lines) + "\n"


_SPAN = """
SELECT min(e.occurred_at) AS first_at, max(e.occurred_at) AS last_at,
       count(*) FILTER (WHERE e.type = 'event_voided' AND e.recorded_at > $2) AS corrections
FROM ledger.events AS e WHERE e.operation_id = $1
"""


async def read_facts(conn: Connection, operation_id: str) -> OperationFacts:
    """The facts of one operation, read in one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        record = await ops.get(conn, operation_id)
        closed_at = None if record is None else record.closed_at
        span = await conn.fetchrow(_SPAN, operation_id, closed_at)
        late = await conn.fetchval(
            "SELECT count(*) FROM ledger.late_events WHERE operation_id = $1", operation_id
        )
    return OperationFacts(
        operation_id, record, span["first_at"], span["last_at"],
        int(span["corrections"] or 0) if closed_at is not None else 0, int(late),
    )  # fmt: skip
