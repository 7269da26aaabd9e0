"""What one batch changes in the ledger, computed in memory from the batch and the rows it touches.

Pure: the writer reads the chain heads, the existing events (with their contributions) and the
voids that the batch refers to, hands them to `plan_batch`, and writes the rows it returns. The
rules mirror `schemas.tally.Tally` exactly (duplicates, conflicts, voids in either order), so the
projection always equals the fold of the accepted events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple
from uuid import UUID

from schemas.canonical import GENESIS_HASH
from schemas.tally import Contribution, negate
from services.aggregator.records import PreparedEvent, PreparedRecord

TotalsKey = tuple[str, str, str, str, str, date]  # (operation, metric, detail, area, unit, day)


class Head(NamedTuple):
    """An operation's chain head: the last seq and hash (seq 0 and the genesis hash when empty)."""

    seq: int
    hash: str


GENESIS = Head(0, GENESIS_HASH)


@dataclass(frozen=True, slots=True)
class Known:
    """An event already in the ledger (or earlier in this batch), as the rules need to see it."""

    content_hash: str
    operation_id: str
    type: str
    contribution: Contribution | None
    occurred_at: datetime | None  # of the event, carried by a void's negated row


@dataclass(frozen=True, slots=True)
class VoidRow:
    """A row of ``voids``: who voided the target, and whether the target has been cancelled."""

    void_event_id: UUID
    operation_id: str
    applied: bool


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    """A new event with its place in the chain."""

    event: PreparedEvent
    seq: int
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ContributionRow:
    event_id: UUID
    operation_id: str
    c: Contribution
    occurred_at: datetime
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ConflictRow:
    event: PreparedEvent
    stored_content_hash: str


@dataclass(slots=True)
class Plan:
    """Rows to write for one batch, and what happened to each event."""

    events: list[ChainedEvent] = field(default_factory=list)
    contributions: list[ContributionRow] = field(default_factory=list)
    new_voids: dict[UUID, tuple[UUID, str, bool]] = field(default_factory=dict)  # target -> row
    applied_held_voids: list[UUID] = field(default_factory=list)  # targets of held voids now met
    conflicts: list[ConflictRow] = field(default_factory=list)
    totals: dict[TotalsKey, int] = field(default_factory=dict)
    heads: dict[str, Head] = field(default_factory=dict)  # only the operations that advanced
    last_event_at: dict[int, datetime] = field(default_factory=dict)  # per partition
    duplicates: int = 0

    @property
    def operations_changed(self) -> list[str]:
        return sorted(self.heads)


def chain(body_json: bytes, prev_hash: str) -> str:
    """`schemas.canonical.chain_hash`, on the canonical bytes already computed for storage."""
    return hashlib.sha256(body_json + prev_hash.encode()).hexdigest()


def _add(plan: Plan, operation_id: str, c: Contribution) -> None:
    key = (operation_id, c.metric, c.detail, c.area, c.unit, c.day)
    plan.totals[key] = plan.totals.get(key, 0) + c.delta


class _Planner:
    def __init__(
        self,
        heads: Mapping[str, Head],
        known: Mapping[UUID, Known],
        voids: Mapping[UUID, VoidRow],
    ) -> None:
        self.plan = Plan()
        self.heads = dict(heads)
        self.known = dict(known)
        self.voids = dict(voids)

    def add(self, e: PreparedEvent) -> None:
        seen = self.known.get(e.event_id)
        if seen is not None:
            if seen.content_hash == e.content_hash:
                self.plan.duplicates += 1
            else:
                self.plan.conflicts.append(ConflictRow(e, seen.content_hash))
            return
        self._append(e)
        self.known[e.event_id] = Known(
            e.content_hash, e.operation_id, e.type, e.contribution, e.occurred_at
        )
        if e.void_target is not None:
            self._void(e, e.void_target)
            return
        c = e.contribution
        if c is None:
            return
        self._contribute(e.event_id, e.operation_id, c, e.occurred_at, e.recorded_at)
        held = self.voids.get(e.event_id)
        if held is not None and not held.applied and held.operation_id == e.operation_id:
            # The void came first; cancel the target now, in the void's name. The row carries
            # the target's recorded_at (not the earlier void's): the cancellation is known only
            # from the moment the target is, so a known_at read never sees a negative count.
            self._contribute(
                held.void_event_id, e.operation_id, negate(c), e.occurred_at, e.recorded_at
            )
            self.voids[e.event_id] = VoidRow(held.void_event_id, held.operation_id, True)
            if e.event_id in self.plan.new_voids:
                self.plan.new_voids[e.event_id] = (held.void_event_id, held.operation_id, True)
            else:
                self.plan.applied_held_voids.append(e.event_id)

    def _void(self, v: PreparedEvent, target_id: UUID) -> None:
        if target_id in self.voids:
            return  # voided twice: the first void stands
        target = self.known.get(target_id)
        if target is None:
            # Held until the target arrives (in this batch or a later one).
            self.voids[target_id] = VoidRow(v.event_id, v.operation_id, False)
            self.plan.new_voids[target_id] = (v.event_id, v.operation_id, False)
            return
        if target.type == "event_voided" or target.operation_id != v.operation_id:
            return  # a void of a void, or of another operation's event, changes nothing
        self.voids[target_id] = VoidRow(v.event_id, v.operation_id, True)
        self.plan.new_voids[target_id] = (v.event_id, v.operation_id, True)
        if target.contribution is not None and target.occurred_at is not None:
            self._contribute(
                v.event_id,
                v.operation_id,
                negate(target.contribution),
                target.occurred_at,
                v.recorded_at,
            )

    def _contribute(
        self,
        event_id: UUID,
        operation_id: str,
        c: Contribution,
        occurred_at: datetime,
        recorded_at: datetime,
    ) -> None:
        self.plan.contributions.append(
            ContributionRow(event_id, operation_id, c, occurred_at, recorded_at)
        )
        _add(self.plan, operation_id, c)

    def _append(self, e: PreparedEvent) -> None:
        head = self.heads.get(e.operation_id, GENESIS)
        new = Head(head.seq + 1, chain(e.body_json, head.hash))
        self.plan.events.append(ChainedEvent(e, new.seq, head.hash, new.hash))
        self.heads[e.operation_id] = new
        self.plan.heads[e.operation_id] = new
        last = self.plan.last_event_at.get(e.partition)
        if last is None or e.recorded_at > last:
            self.plan.last_event_at[e.partition] = e.recorded_at


def plan_batch(
    records: Iterable[PreparedRecord],
    heads: Mapping[str, Head],
    known: Mapping[UUID, Known],
    voids: Mapping[UUID, VoidRow],
) -> Plan:
    """The rows a batch adds, given the current chain heads, known events and voids it touches."""
    planner = _Planner(heads, known, voids)
    for record in records:
        for event in record.events:
            planner.add(event)
    plan = planner.plan
    plan.totals = {k: v for k, v in plan.totals.items() if v}
    return plan
