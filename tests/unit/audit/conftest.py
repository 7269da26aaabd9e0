"""Chained event rows built the way the ledger stores them, for the pure audit modules."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from schemas.canonical import GENESIS_HASH, chain_hash
from schemas.examples import example_events
from schemas.parsing import parse_event
from schemas.tally import fold

Rows = list[dict[str, Any]]


def link(bodies: list[dict[str, Any]]) -> Rows:
    """Rows with seq, hashes and the copied columns, as the aggregator writes them."""
    rows, prev = [], GENESIS_HASH
    for seq, body in enumerate(bodies, start=1):
        h = chain_hash(body, prev)
        rows.append(
            {
                "seq": seq,
                "event_id": uuid.UUID(body["event_id"]),
                "operation_id": body["operation_id"],
                "type": body["type"],
                "occurred_at": datetime.fromisoformat(body["occurred_at"]),
                "recorded_at": datetime.fromisoformat(body["recorded_at"]),
                "principal": body["principal"],
                "officer_id": body["actor"]["officer_id"],
                "unit": body["actor"]["unit"],
                "area": body["location"]["area"],
                "prev_hash": prev,
                "hash": h,
                "kafka_partition": 0,
                "kafka_offset": seq - 1,
                "kafka_index": 0,
                "voided": False,
                "voided_by": None,
                "body": body,
            }
        )
        prev = h
    return rows


def stored(events: list[dict[str, Any]], recorded: list[str] | None = None) -> list[dict[str, Any]]:
    """Client events stamped with server fields."""
    return [
        {
            **e,
            "recorded_at": (recorded[i] if recorded else "2026-11-22T12:00:00+00:00"),
            "principal": "field-1",
        }
        for i, e in enumerate(events)
    ]


@pytest.fixture
def chain() -> Rows:
    """The sample events (every kind, one void) chained from genesis."""
    return link(stored(example_events()))


@pytest.fixture
def linker() -> Callable[[list[dict[str, Any]]], Rows]:
    return link


def totals_of(rows: Rows) -> dict[Any, int]:
    """The fold of the rows' bodies, as a projection's totals rows."""
    events = [
        parse_event({k: v for k, v in r["body"].items() if k not in ("recorded_at", "principal")})
        for r in rows
    ]
    return dict(fold(events).rows)
