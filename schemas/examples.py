"""Valid sample events of every kind, as a client would submit them (JSON-ready dicts)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID, uuid5

_NS: Final = UUID("5b0e8d1c-3f7a-4c2e-9a61-0d4c6f1e2b3a")
OPERATION: Final = "week-of-action-county-lines"


def _event(n: int, kind: str, payload: dict[str, Any], **over: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid5(_NS, f"example-{n}")),
        "operation_id": OPERATION,
        "type": kind,
        "schema_version": 1,
        "occurred_at": f"2026-11-{16 + n % 5:02d}T{6 + n % 12:02d}:15:00Z",
        "actor": {"officer_id": f"PC{4100 + n}", "unit": "Stronghold Thames Valley"},
        "location": {"area": "Buckinghamshire", "lat": 51.8168, "lon": -0.8124},
        "source": {"device_id": f"tablet-{n:03d}", "app_version": "3.2.1"},
        "payload": payload,
    }
    event.update(over)
    return event


_EXAMPLES: Final[list[dict[str, Any]]] = [
    _event(1, "warrant_executed", {"warrant_ref": "W-2026-0142", "premises": "flat, High St"}),
    _event(
        2,
        "warrant_executed",
        {"warrant_ref": "W-2026-0143"},
        location={"area": "Oxfordshire"},
        source={"device_id": "tablet-002"},
    ),
    _event(
        3,
        "arrest_made",
        {"person_ref": "P-9f3a", "age_band": "adult", "offences": ["PWITS class A"]},
    ),
    _event(
        4,
        "arrest_made",
        {"person_ref": "P-71c2", "age_band": "youth", "offences": ["possession", "assault"]},
        location={"area": "Berkshire"},
    ),
    _event(
        5,
        "item_seized",
        {"item": "drug_wrap", "substance": "crack", "quantity": 120},
        occurred_at="2026-11-17T23:30:00-01:00",
    ),
    _event(6, "item_seized", {"item": "mobile_phone", "quantity": 3}),
    _event(7, "item_seized", {"item": "weapon", "quantity": 1, "description": "machete"}),
    _event(8, "item_seized", {"item": "cash", "amount_pence": 1_250_000, "currency": "GBP"}),
    _event(9, "item_seized", {"item": "other", "quantity": 2, "description": "scales"}),
    _event(10, "school_visited", {"school_ref": "URN-110456", "pupils_engaged": 240}),
    _event(11, "school_visited", {"school_ref": "URN-110789"}),
    _event(
        12,
        "vulnerable_person_engaged",
        {"person_ref": "V-22b8", "safeguarding_referral": True},
    ),
    _event(
        13,
        "event_voided",
        {"voided_event_id": str(uuid5(_NS, "example-6")), "reason": "phones counted twice"},
    ),
]


def example_events(kind: str | None = None) -> list[dict[str, Any]]:
    """Fresh copies of the sample events, optionally only those of one ``type``."""
    return [copy.deepcopy(e) for e in _EXAMPLES if kind is None or e["type"] == kind]


def fresh_event(
    operation_id: str, kind: str = "warrant_executed", **over: Any
) -> dict[str, Any]:
    """A valid event of ``kind`` for ``operation_id`` with a new event_id, occurring now.

    ``over`` replaces top-level fields (e.g. ``payload=...``).
    """
    event = example_events(kind)[0]
    event.update(
        event_id=str(uuid.uuid4()),
        operation_id=operation_id,
        occurred_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )
    event.update(over)
    return event
