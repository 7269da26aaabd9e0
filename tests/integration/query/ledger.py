"""Test helper: field events into the real ledger tables through the aggregator's batch writer.

Events are built from the contract's examples with the fields a test cares about replaced, and
written as Kafka-shaped submissions (partition, offset, value) so every row is what production
writes, NOTIFY included.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

import schemas
from services.common.wire import Submission, encode_submission
from services.ledger.writer import BatchWriter

_EXAMPLES = {e["type"]: e for e in reversed(schemas.example_events())}


def make_event(
    operation_id: str,
    kind: str,
    occurred_at: datetime,
    *,
    area: str = "Buckinghamshire",
    unit: str = "Stronghold North",
    **payload: Any,
) -> dict[str, Any]:
    """A valid client event of ``kind`` (payload fields override the example's)."""
    event = copy.deepcopy(_EXAMPLES[kind])
    event["event_id"] = str(uuid.uuid4())
    event["operation_id"] = operation_id
    event["occurred_at"] = occurred_at.isoformat()
    event["location"] = {"area": area}
    event["actor"] = {"officer_id": "PC1", "unit": unit}
    if kind == "item_seized" and payload:
        event["payload"] = dict(payload)
    else:
        event["payload"].update(payload)
    return event


def void_of(target: dict[str, Any], occurred_at: datetime) -> dict[str, Any]:
    """An ``event_voided`` cancelling ``target``."""
    return make_event(
        target["operation_id"],
        "event_voided",
        occurred_at,
        voided_event_id=target["event_id"],
        reason="entered twice",
    )


class Ledger:
    """Writes submissions with increasing offsets per partition, like one aggregator would."""

    def __init__(self, pool: asyncpg.Pool, topic: str, group: str) -> None:
        self.writer = BatchWriter(pool, topic=topic, consumer_group=group)
        self.offsets: dict[int, int] = {}

    async def submit(
        self,
        events: Iterable[dict[str, Any]],
        recorded_at: datetime,
        *,
        partition: int = 0,
        highwater_ahead: int = 0,
    ) -> int:
        """Apply one submission (all events of one operation); returns its offset."""
        events = list(events)
        offset = self.offsets.get(partition, -1) + 1
        self.offsets[partition] = offset
        sub = Submission(
            operation_id=events[0]["operation_id"],
            recorded_at=recorded_at.isoformat(),
            principal="test-field",
            events=events,
        )
        result = await self.writer.apply_records(
            [(partition, offset, encode_submission(sub))],
            highwater={partition: offset + 1 + highwater_ahead},
        )
        assert not result.poison, result.poison
        return offset


def fold_metrics(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    """The contract's own fold of ``events``: what every totals read must equal."""
    return schemas.tally.fold(schemas.parse_event(e) for e in events).metrics
