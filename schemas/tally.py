"""The tally rule, pure: what each event adds, and the fold of a set of events into totals.

The one place that decides what an arriving event does (new, duplicate, conflict, void applied,
held or ignored): `FoldState.add`. The pure `fold`, the ledger's batch planner (and so the
aggregator and the rebuild) all call it. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from schemas.envelope import Envelope
from schemas.events import FieldEvent
from schemas.kinds.arrests import ArrestMade
from schemas.kinds.corrections import EventVoided
from schemas.kinds.outreach import SchoolVisited, VulnerablePersonEngaged
from schemas.kinds.seizures import CashPayload, DrugWrapPayload, ItemSeized
from schemas.kinds.warrants import WarrantExecuted

METRICS: Final[tuple[str, ...]] = (
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

#: Days are counted in the operation's local time.
LONDON: Final = ZoneInfo("Europe/London")

RowKey = tuple[str, str, str, str, date]  # (metric, detail, area, unit, day)


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one event adds to one row of the totals."""

    metric: str
    detail: str  # age band for arrests, substance for drug wraps, "" otherwise
    delta: int
    area: str
    unit: str
    day: date

    @property
    def key(self) -> RowKey:
        return (self.metric, self.detail, self.area, self.unit, self.day)


def negate(c: Contribution) -> Contribution:
    """The contribution that cancels ``c`` (what voiding its event removes)."""
    return Contribution(c.metric, c.detail, -c.delta, c.area, c.unit, c.day)


Rule = Callable[[FieldEvent], Contribution | None]
_RULES: dict[str, Rule] = {}
M = TypeVar("M", bound=Envelope)
KindRule = Callable[[M], Contribution | None]


def rule(kind: str) -> Callable[[KindRule[M]], KindRule[M]]:
    """Register the contribution rule of one kind (a new kind adds one such function)."""

    def decorate(fn: KindRule[M]) -> KindRule[M]:
        _RULES[kind] = fn  # type: ignore[assignment]  # dispatch on `type` guarantees M
        return fn

    return decorate


def _row(event: Envelope, metric: str, delta: int = 1, detail: str = "") -> Contribution:
    day = event.occurred_at.astimezone(LONDON).date()
    return Contribution(metric, detail, delta, event.location.area, event.actor.unit, day)


@rule("warrant_executed")
def _warrant(event: WarrantExecuted) -> Contribution:
    return _row(event, "warrants_executed")


@rule("arrest_made")
def _arrest(event: ArrestMade) -> Contribution:
    return _row(event, "arrests", detail=event.payload.age_band)


_ITEM_METRICS: Final = {
    "drug_wrap": "drug_wraps_seized",
    "mobile_phone": "mobile_phones_seized",
    "weapon": "weapons_seized",
    "cash": "cash_seized_pence",
    "other": "other_items_seized",
}


@rule("item_seized")
def _seizure(event: ItemSeized) -> Contribution:
    p = event.payload
    metric = _ITEM_METRICS[p.item]
    if isinstance(p, CashPayload):
        return _row(event, metric, p.amount_pence)
    detail = p.substance if isinstance(p, DrugWrapPayload) else ""
    return _row(event, metric, p.quantity, detail)


@rule("school_visited")
def _school(event: SchoolVisited) -> Contribution:
    return _row(event, "schools_visited")


@rule("vulnerable_person_engaged")
def _vulnerable(event: VulnerablePersonEngaged) -> Contribution:
    return _row(event, "vulnerable_people_engaged")


@rule("event_voided")
def _void(event: EventVoided) -> None:
    return None  # its effect is negate(contribution(target)), which needs the target


def contribution(event: FieldEvent) -> Contribution | None:
    """What ``event`` alone adds to the totals; None for an ``event_voided``."""
    return _RULES[event.type](event)


@dataclass(frozen=True)
class Totals:
    """Headline metrics (every name present) and the fine rows that sum to them."""

    metrics: dict[str, int]
    rows: dict[RowKey, int]


# --- The fold rule: what happens to each event that arrives -------------------------------
#
# Every consumer of the rule (the pure `fold`, the aggregator's batch planner, the rebuild) asks
# `FoldState.add` and acts on the decision it returns; none of them decides anything itself.


@dataclass(frozen=True, slots=True)
class Fact:
    """What the rule reads of one event: identity, owner, what it counts or voids, and when.

    ``content_hash`` tells a duplicate from a conflict; None (a pure fold of parsed events)
    treats a repeated ``event_id`` as a duplicate, which counts the same. ``recorded_at`` is
    the server's stamp, None when the fold is of client events only.
    """

    event_id: UUID
    operation_id: str
    type: str
    contribution: Contribution | None
    void_target: UUID | None
    occurred_at: datetime
    recorded_at: datetime | None = None
    content_hash: str | None = None

    @property
    def is_void(self) -> bool:
        return self.type == VOID


VOID: Final = "event_voided"


@dataclass(frozen=True, slots=True)
class Void:
    """A void event as a target's state holds it (waiting for the target, or applied to it)."""

    void_event_id: UUID
    operation_id: str
    recorded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The same ``event_id`` with the same content again: nothing changes."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """The same ``event_id`` with other content: recorded, never counted; the first stands."""

    stored_content_hash: str | None


@dataclass(frozen=True, slots=True)
class Removal:
    """The row that cancels a voided event: its contribution negated, in the void's name.

    It carries the target's ``occurred_at`` and the later of the two ``recorded_at``s, in
    either arrival order, so that a ``known_at`` read never sees the removal before the event.
    """

    void: Void
    target_id: UUID
    contribution: Contribution | None  # negated; None when the target counted nothing
    occurred_at: datetime
    recorded_at: datetime | None


@dataclass(frozen=True, slots=True)
class Counted:
    """A new event that counts (``contribution`` None for a kind that adds nothing).

    ``cancelled_by`` is set when a void of its own operation was waiting for it: the event is
    recorded and counted, and cancelled at once.
    """

    contribution: Contribution | None
    cancelled_by: Removal | None = None


@dataclass(frozen=True, slots=True)
class VoidApplied:
    """A void of a known, still counted event of its own operation: the target is cancelled."""

    removal: Removal


@dataclass(frozen=True, slots=True)
class VoidHeld:
    """A void whose target has not arrived: held until it does (several may wait for one)."""

    target_id: UUID


@dataclass(frozen=True, slots=True)
class VoidIgnored:
    """A void that changes nothing: of another operation's event, of a void, or a second void."""

    target_id: UUID
    reason: str


Decision = Duplicate | Conflict | Counted | VoidApplied | VoidHeld | VoidIgnored

#: Why a void is ignored (the reasons `VoidIgnored` carries).
OTHER_OPERATION: Final = "its target belongs to another operation"
OF_A_VOID: Final = "its target is itself a void"
ALREADY_VOIDED: Final = "its target is already voided"


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _removal(void: Void, target: Fact) -> Removal:
    c = target.contribution
    return Removal(
        void,
        target.event_id,
        None if c is None else negate(c),
        target.occurred_at,
        _later(target.recorded_at, void.recorded_at),
    )


@dataclass
class FoldState:
    """What the rule remembers: events seen, voids waiting for their target, voids applied.

    Built empty by `fold`, or by the ledger from its rows (only those a batch touches): the
    events with those ids, and the voids that name them as target (``held`` in arrival order).
    """

    events: dict[UUID, Fact] = field(default_factory=dict)
    held: dict[UUID, list[Void]] = field(default_factory=dict)  # target -> waiting voids
    cancelled: dict[UUID, Void] = field(default_factory=dict)  # target -> the void applied

    def decide(self, fact: Fact) -> Decision:
        """What ``fact`` does, given this state (which is not changed)."""
        seen = self.events.get(fact.event_id)
        if seen is not None:
            if seen.content_hash == fact.content_hash or fact.content_hash is None:
                return Duplicate()
            return Conflict(seen.content_hash)
        if fact.void_target is not None:
            return self._void(fact, fact.void_target)
        c = fact.contribution
        for void in self.held.get(fact.event_id, ()):
            if void.operation_id == fact.operation_id:  # first applicable wins
                return Counted(c, _removal(void, fact))
        return Counted(c)

    def _void(self, fact: Fact, target_id: UUID) -> Decision:
        target = self.events.get(target_id)
        if target is None:
            return VoidHeld(target_id)
        if target.is_void:
            return VoidIgnored(target_id, OF_A_VOID)
        if target.operation_id != fact.operation_id:
            return VoidIgnored(target_id, OTHER_OPERATION)
        if target_id in self.cancelled:
            return VoidIgnored(target_id, ALREADY_VOIDED)
        return VoidApplied(_removal(_as_void(fact), target))

    def add(self, fact: Fact) -> Decision:
        """Decide what ``fact`` does and remember it."""
        decision = self.decide(fact)
        if isinstance(decision, Duplicate | Conflict):
            return decision
        self.events[fact.event_id] = fact
        if isinstance(decision, VoidHeld):
            self.held.setdefault(decision.target_id, []).append(_as_void(fact))
        elif isinstance(decision, VoidApplied):
            self.cancelled[decision.removal.target_id] = decision.removal.void
        elif isinstance(decision, Counted) and decision.cancelled_by is not None:
            self.cancelled[fact.event_id] = decision.cancelled_by.void
        return decision


def _as_void(fact: Fact) -> Void:
    return Void(fact.event_id, fact.operation_id, fact.recorded_at)


def fact_of(event: FieldEvent, recorded_at: datetime | None = None) -> Fact:
    """The `Fact` of a parsed event (no content hash: a pure fold needs none)."""
    target = event.payload.voided_event_id if isinstance(event, EventVoided) else None
    return Fact(
        event.event_id,
        event.operation_id,
        event.type,
        contribution(event),
        target,
        event.occurred_at,
        recorded_at,
    )


def deltas(decision: Decision) -> list[Contribution]:
    """The row changes a decision makes to the totals."""
    if isinstance(decision, VoidApplied):
        c = decision.removal.contribution
        return [] if c is None else [c]
    if isinstance(decision, Counted) and decision.cancelled_by is None:
        return [] if decision.contribution is None else [decision.contribution]
    return []  # duplicates, conflicts, held and ignored voids; an event cancelled on arrival


@dataclass
class Tally:
    """Incremental fold. ``add`` returns the row deltas an event causes, in any arrival order.

    A duplicate ``event_id`` is counted once (the first seen wins, whatever the second holds).
    A void cancels its target exactly, whether it arrives before or after it. Only a void of
    the target's own operation applies; a void sent under another operation, voiding twice,
    voiding a void or a missing event changes nothing (see `FoldState`).
    """

    state: FoldState = field(default_factory=FoldState)
    _rows: dict[RowKey, int] = field(default_factory=dict)

    def add(self, event: FieldEvent) -> list[Contribution]:
        """Record ``event``; return the row deltas it causes (empty for a no-op)."""
        out = deltas(self.state.add(fact_of(event)))
        for d in out:
            self._rows[d.key] = self._rows.get(d.key, 0) + d.delta
        return out

    def totals(self) -> Totals:
        """The current totals; rows that cancelled out to zero are left out."""
        rows = {k: v for k, v in self._rows.items() if v}
        metrics = dict.fromkeys(METRICS, 0)
        for (metric, *_), value in rows.items():
            metrics[metric] += value
        return Totals(metrics, rows)


def fold(events: Iterable[FieldEvent]) -> Totals:
    """The totals of a set of events, independent of their order."""
    tally = Tally()
    for event in events:
        tally.add(event)
    return tally.totals()
