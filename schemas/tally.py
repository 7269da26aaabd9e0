"""The tally rule, pure: what each event adds, and the fold of a set of events into totals.

The aggregator, the rebuild and the tests all use this one rule. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
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


@dataclass
class Tally:
    """Incremental fold. ``add`` returns the row deltas an event causes, in any arrival order.

    A duplicate ``event_id`` is counted once (the first seen wins, whatever the second holds).
    A void cancels its target exactly, whether it arrives before or after it; voiding twice,
    voiding a void, voiding a missing event or an event of another operation changes nothing.
    """

    _events: dict[UUID, FieldEvent] = field(default_factory=dict)
    _pending: dict[UUID, list[EventVoided]] = field(default_factory=dict)  # target not yet seen
    _cancelled: set[UUID] = field(default_factory=set)
    _rows: dict[RowKey, int] = field(default_factory=dict)

    def add(self, event: FieldEvent) -> list[Contribution]:
        """Record ``event``; return the row deltas it causes (empty for a no-op)."""
        if event.event_id in self._events:
            return []
        self._events[event.event_id] = event
        deltas = self._deltas(event)
        for d in deltas:
            self._rows[d.key] = self._rows.get(d.key, 0) + d.delta
        return deltas

    def _deltas(self, event: FieldEvent) -> list[Contribution]:
        if isinstance(event, EventVoided):
            target_id = event.payload.voided_event_id
            target = self._events.get(target_id)
            if target is None:
                self._pending.setdefault(target_id, []).append(event)
                return []
            if target_id in self._cancelled or not _voids(event, target):
                return []
            self._cancelled.add(target_id)
            c = contribution(target)
            return [] if c is None else [negate(c)]
        if any(_voids(v, event) for v in self._pending.pop(event.event_id, ())):
            self._cancelled.add(event.event_id)
            return []
        c = contribution(event)
        return [] if c is None else [c]

    def totals(self) -> Totals:
        """The current totals; rows that cancelled out to zero are left out."""
        rows = {k: v for k, v in self._rows.items() if v}
        metrics = dict.fromkeys(METRICS, 0)
        for (metric, *_), value in rows.items():
            metrics[metric] += value
        return Totals(metrics, rows)


def _voids(void: EventVoided, target: FieldEvent) -> bool:
    return target.type != "event_voided" and target.operation_id == void.operation_id


def fold(events: Iterable[FieldEvent]) -> Totals:
    """The totals of a set of events, independent of their order."""
    tally = Tally()
    for event in events:
        tally.add(event)
    return tally.totals()
