"""What one batch changes in the ledger, computed in memory from the batch and the rows it touches.

Pure: the writer reads the chain heads and the events and voids the batch refers to (as a
`schemas.tally.FoldState`), hands them to `plan_batch`, and writes the rows it returns. What
each event does is decided by the fold rule (`FoldState.add`); this module only adds what the
database needs: chain positions and hashes, and the rows that record each decision.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple
from uuid import UUID

from schemas.canonical import GENESIS_HASH, chain_digest
from schemas.tally import (
    VOID,
    Conflict,
    Contribution,
    Counted,
    Duplicate,
    Fact,
    FoldState,
    Removal,
    Void,
    VoidApplied,
    VoidHeld,
)
from services.ledger.records import PreparedEvent, PreparedRecord

TotalsKey = tuple[str, str, str, str, str, date]  # (operation, metric, detail, area, unit, day)


class Head(NamedTuple):
    """An operation's chain head: the last seq and hash (seq 0 and the genesis hash when empty)."""

    seq: int
    hash: str


GENESIS = Head(0, GENESIS_HASH)


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
class VoidRow:
    """A row of ``voids``: one per void that waits for or was applied to its target."""

    void_event_id: UUID
    target_event_id: UUID
    operation_id: str
    applied: bool


@dataclass(frozen=True, slots=True)
class Closure:
    """Where an operation's tally was frozen: the log offset of its last event counted at close.

    An operation's records all sit in one partition (key = operation_id), so any of its events
    at a higher offset reached the ledger after the close. -1: it closed with no event.
    """

    last_offset: int


#: Why an event is recorded late and not counted.
LATE_REASON = "the operation was closed before this event reached the ledger"


def admitted_after_close(e: PreparedEvent) -> bool:
    """The one kind of event a closed operation still takes: an admin's void with a reason."""
    return (
        e.void_target is not None
        and e.role == "admin"
        and e.void_reason is not None
        and bool(e.void_reason.strip())
    )


def is_late(e: PreparedEvent, closures: Mapping[str, Closure]) -> bool:
    """True when ``e`` reached the log after its operation closed and is not admitted then.

    The rule depends only on the log (the event's position and the submitter's role) and on
    the recorded closure, so the aggregator and a rebuild replaying the log decide alike.
    """
    closure = closures.get(e.operation_id)
    return closure is not None and e.offset > closure.last_offset and not admitted_after_close(e)


@dataclass(frozen=True, slots=True)
class ConflictRow:
    event: PreparedEvent
    stored_content_hash: str


@dataclass(slots=True)
class Plan:
    """Rows to write for one batch, and what happened to each event."""

    events: list[ChainedEvent] = field(default_factory=list)
    contributions: list[ContributionRow] = field(default_factory=list)
    new_voids: dict[UUID, VoidRow] = field(default_factory=dict)  # by void_event_id
    applied_held_voids: list[UUID] = field(default_factory=list)  # stored voids now applied
    conflicts: list[ConflictRow] = field(default_factory=list)
    late: list[PreparedEvent] = field(default_factory=list)  # recorded, never chained or counted
    totals: dict[TotalsKey, int] = field(default_factory=dict)
    heads: dict[str, Head] = field(default_factory=dict)  # only the operations that advanced
    last_event_at: dict[int, datetime] = field(default_factory=dict)  # per partition
    duplicates: int = 0

    @property
    def operations_changed(self) -> list[str]:
        return sorted(self.heads)


def chain(body_json: bytes, prev_hash: str) -> str:
    """`schemas.canonical.chain_hash`, on the canonical bytes already computed for storage."""
    return chain_digest(body_json, prev_hash)


def fact(e: PreparedEvent) -> Fact:
    """The fold rule's view of a prepared event."""
    return Fact(
        e.event_id, e.operation_id, e.type, e.contribution, e.void_target, e.occurred_at,
        e.recorded_at, e.content_hash,
    )  # fmt: skip


class _Planner:
    def __init__(
        self, heads: Mapping[str, Head], state: FoldState, closures: Mapping[str, Closure]
    ) -> None:
        self.plan = Plan()
        self.heads = dict(heads)
        self.state = state
        self.closures = closures

    def add(self, e: PreparedEvent) -> None:
        if is_late(e, self.closures):
            # A resend of an event already in the ledger stays a duplicate (or a conflict);
            # anything new is kept for the auditor, outside the chain and the totals.
            seen = self.state.decide(fact(e))
            if isinstance(seen, Duplicate):
                self.plan.duplicates += 1
            elif isinstance(seen, Conflict):
                assert seen.stored_content_hash is not None
                self.plan.conflicts.append(ConflictRow(e, seen.stored_content_hash))
            else:
                self.plan.late.append(e)
            return
        decision = self.state.add(fact(e))
        if isinstance(decision, Duplicate):
            self.plan.duplicates += 1
            return
        if isinstance(decision, Conflict):
            assert decision.stored_content_hash is not None  # the ledger stores every hash
            self.plan.conflicts.append(ConflictRow(e, decision.stored_content_hash))
            return
        self._append(e)
        if isinstance(decision, VoidHeld):
            self._void_row(e.event_id, decision.target_id, e.operation_id, applied=False)
        elif isinstance(decision, VoidApplied):
            removal = decision.removal
            self._void_row(e.event_id, removal.target_id, e.operation_id, applied=True)
            self._remove(removal)
        elif isinstance(decision, Counted):
            if decision.contribution is not None:
                self._contribute(
                    e.event_id, e.operation_id, decision.contribution, e.occurred_at,
                    e.recorded_at,
                )  # fmt: skip
            if decision.cancelled_by is not None:  # a void of its own operation was waiting
                self._apply_held(decision.cancelled_by.void.void_event_id)
                self._remove(decision.cancelled_by)
        # VoidIgnored: the void stays in the chain and changes nothing else.

    def _void_row(self, void_id: UUID, target: UUID, operation_id: str, *, applied: bool) -> None:
        self.plan.new_voids[void_id] = VoidRow(void_id, target, operation_id, applied)

    def _apply_held(self, void_id: UUID) -> None:
        row = self.plan.new_voids.get(void_id)
        if row is None:  # held in an earlier batch: its stored row is updated
            self.plan.applied_held_voids.append(void_id)
        else:
            self.plan.new_voids[void_id] = VoidRow(
                void_id, row.target_event_id, row.operation_id, True
            )

    def _remove(self, removal: Removal) -> None:
        c, void = removal.contribution, removal.void
        if c is None:
            return
        assert removal.recorded_at is not None  # every ledger event has one
        self._contribute(
            void.void_event_id, void.operation_id, c, removal.occurred_at, removal.recorded_at
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
        key = (operation_id, c.metric, c.detail, c.area, c.unit, c.day)
        self.plan.totals[key] = self.plan.totals.get(key, 0) + c.delta

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
    state: FoldState | None = None,
    closures: Mapping[str, Closure] | None = None,
) -> Plan:
    """The rows a batch adds, given the chain heads, the fold state of the ids it touches and
    the closures of the batch's operations (`is_late` events are only listed in ``late``).

    ``state`` is updated in place (it then holds the batch's events too).
    """
    planner = _Planner(heads, FoldState() if state is None else state, closures or {})
    for record in records:
        for event in record.events:
            planner.add(event)
    plan = planner.plan
    plan.totals = {k: v for k, v in plan.totals.items() if v}
    return plan


def fold_state(rows: Iterable[Mapping[str, Any]]) -> FoldState:
    """The fold state held in the ledger's rows, as the writer's ``lookup`` returns them.

    An event row gives a `Fact` (a void's own contribution row is its removal, so a void
    counts nothing); a void row is applied to its target, or held (in chain order).
    """
    state = FoldState()
    held: list[tuple[int, UUID, Void]] = []
    for r in rows:
        if r["is_event"]:
            c = None
            if r["metric"] is not None and r["type"] != VOID:
                c = Contribution(
                    r["metric"], r["detail"], r["delta"], r["area"], r["unit"], r["day"]
                )
            state.events[r["id"]] = Fact(
                r["id"], r["operation_id"], r["type"], c, r["void_target"], r["occurred_at"],
                r["recorded_at"], r["content_hash"],
            )  # fmt: skip
            continue
        void = Void(r["void_event_id"], r["operation_id"], r["recorded_at"])
        if r["applied"]:
            state.cancelled[r["id"]] = void
        else:
            held.append((r["seq"], r["id"], void))
    for _, target, void in sorted(held, key=lambda h: h[0]):
        state.held.setdefault(target, []).append(void)
    return state
