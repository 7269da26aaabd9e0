"""The reference week of action, as the individual events field devices would send.

Seven days across Buckinghamshire, Berkshire and Oxfordshire, several Stronghold teams, adding
up exactly to the published tally. Like real devices, some resend a sync they already sent
(duplicates: same event_id, same content), some entries are mistakes that are voided and
re-entered, and one device was offline while a supervisor voided its mistaken entry, so that
void reaches the ledger before its target. Deterministic for a given seed and operation id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from uuid import UUID, uuid5

#: The published tally the demo must reproduce (cash in pence: £79,245.60).
REFERENCE: Final[dict[str, int]] = {
    "warrants_executed": 52,
    "arrests": 56,
    "drug_wraps_seized": 3586,
    "mobile_phones_seized": 118,
    "weapons_seized": 22,
    "cash_seized_pence": 7_924_560,
    "schools_visited": 24,
    "vulnerable_people_engaged": 22,
    "other_items_seized": 0,
}
DEFAULT_SEED: Final = 2026
WEEK_START: Final = date(2026, 11, 16)  # a Monday; November in England is GMT (UTC+0)

_NS: Final = UUID("8d6f2f4e-9a3b-4c55-8e1a-6b2a7d0c4f19")

# (unit, area, lat, lon): each team works its own area.
TEAMS: Final = (
    ("Stronghold Milton Keynes", "Buckinghamshire", 52.04, -0.76),
    ("Stronghold Aylesbury Vale", "Buckinghamshire", 51.82, -0.81),
    ("Stronghold High Wycombe", "Buckinghamshire", 51.63, -0.75),
    ("Stronghold Reading", "Berkshire", 51.45, -0.97),
    ("Stronghold Slough", "Berkshire", 51.51, -0.59),
    ("Stronghold Oxford", "Oxfordshire", 51.75, -1.26),
    ("Stronghold Banbury", "Oxfordshire", 52.06, -1.34),
)
OFFICERS_PER_TEAM: Final = 3
SUBSTANCES: Final = ("crack", "heroin", "cocaine")
OFFENCES: Final = (
    "possession with intent to supply class A",
    "being concerned in the supply of class A",
    "possession of an offensive weapon",
    "money laundering",
    "modern slavery (county lines)",
    "possession of criminal property",
)
PREMISES: Final = ("flat", "terraced house", "bedsit", "hotel room", "garage", "HMO room")


@dataclass(frozen=True)
class Send:
    """One HTTP request of a device: a single event (POST /v1/events) or a batch."""

    events: list[dict[str, Any]]
    batch: bool


@dataclass
class WeekOfAction:
    """The events of one run, in sending order, and what they must add up to."""

    operation_id: str
    sends: list[Send] = field(default_factory=list)
    duplicates: int = 0
    voids: int = 0

    @property
    def event_count(self) -> int:
        return sum(len(s.events) for s in self.sends)


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """``parts`` positive integers adding up to ``total``."""
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


class _Builder:
    def __init__(self, seed: int, operation_id: str, start: date) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
        self.op = operation_id
        self.start = start
        self.n = 0

    def event(
        self, kind: str, payload: dict[str, Any], team: int, officer: int, at: datetime
    ) -> dict[str, Any]:
        self.n += 1
        unit, area, lat, lon = TEAMS[team]
        rng = self.rng
        return {
            "event_id": str(uuid5(_NS, f"{self.op}/{self.n}")),
            "operation_id": self.op,
            "type": kind,
            "schema_version": 1,
            "occurred_at": at.isoformat(),
            "actor": {"officer_id": f"PC{1000 + team * 10 + officer}", "unit": unit},
            "location": {
                "area": area,
                "lat": round(lat + rng.uniform(-0.05, 0.05), 4),
                "lon": round(lon + rng.uniform(-0.05, 0.05), 4),
            },
            "source": {"device_id": f"tablet-{team:02d}{officer}", "app_version": "4.2.0"},
            "payload": payload,
        }

    def when(self) -> datetime:
        day = self.start + timedelta(days=self.rng.randrange(7))
        minute = self.rng.randrange(5 * 60, 22 * 60)
        return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=UTC)

    def who(self) -> tuple[int, int]:
        return self.rng.randrange(len(TEAMS)), self.rng.randrange(OFFICERS_PER_TEAM)

    def many(self, kind: str, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.event(kind, p, *self.who(), self.when()) for p in payloads]

    def true_events(self) -> list[dict[str, Any]]:
        rng, r = self.rng, REFERENCE

        def hexid() -> str:  # pseudonymous references
            return f"{rng.getrandbits(32):08x}"

        events = self.many(
            "warrant_executed",
            [{"warrant_ref": f"W-2026-{1400 + i}", "premises": rng.choice(PREMISES)}
             for i in range(r["warrants_executed"])],
        )  # fmt: skip
        events += self.many(
            "arrest_made",
            [{"person_ref": f"P-{hexid()}", "age_band": "adult",
              "offences": rng.sample(OFFENCES, rng.randint(1, 3))}
             for _ in range(r["arrests"])],
        )  # fmt: skip
        wraps = _split(rng, r["drug_wraps_seized"], 64)
        events += self.many(
            "item_seized",
            [{"item": "drug_wrap", "substance": SUBSTANCES[i % 3], "quantity": q}
             for i, q in enumerate(wraps)],
        )  # fmt: skip
        for item, total, parts in (("mobile_phone", r["mobile_phones_seized"], 45),
                                   ("weapon", r["weapons_seized"], 14)):  # fmt: skip
            events += self.many(
                "item_seized", [{"item": item, "quantity": q} for q in _split(rng, total, parts)]
            )
        cash = _split(rng, r["cash_seized_pence"], 26)
        events += self.many(
            "item_seized",
            [{"item": "cash", "amount_pence": p, "currency": "GBP"} for p in cash],
        )
        events += self.many(
            "school_visited",
            [{"school_ref": f"URN-{110000 + rng.randrange(9999)}",
              "pupils_engaged": rng.randrange(30, 400)} for _ in range(r["schools_visited"])],
        )  # fmt: skip
        # Cuckooing victims get a safeguarding referral; the others were engaged and signposted.
        events += self.many(
            "vulnerable_person_engaged",
            [{"person_ref": f"{'CV' if i < 9 else 'V'}-{hexid()}",
              "safeguarding_referral": i < 9} for i in range(r["vulnerable_people_engaged"])],
        )  # fmt: skip
        return events

    def void(self, target: dict[str, Any], at: datetime, reason: str) -> dict[str, Any]:
        team = next(i for i, t in enumerate(TEAMS) if t[0] == target["actor"]["unit"])
        payload = {"voided_event_id": target["event_id"], "reason": reason}
        return self.event("event_voided", payload, team, 0, at)


def _mistake(event: dict[str, Any]) -> dict[str, Any]:
    """The same seizure entered wrongly: a quantity with an extra digit."""
    payload = dict(event["payload"])
    if "quantity" in payload:
        payload["quantity"] = payload["quantity"] * 10 + 1
    else:
        payload["amount_pence"] = payload["amount_pence"] * 10
    return {**event, "payload": payload}


def week_of_action(
    seed: int = DEFAULT_SEED, operation_id: str | None = None, start: date = WEEK_START
) -> WeekOfAction:
    """The reference week of action for ``operation_id`` (default ``week-of-action-<seed>``)."""
    op = operation_id or f"week-of-action-{seed}"
    b = _Builder(seed, op, start)
    rng = b.rng
    truth = b.true_events()
    # (send time, order, event, held back to the end of its day?)
    timeline: list[tuple[datetime, int, dict[str, Any], bool]] = []
    minute = timedelta(minutes=1)

    def at(t: datetime, e: dict[str, Any], late: bool = False) -> None:
        timeline.append((t, len(timeline), e, late))

    seizures = [e for e in truth if e["type"] == "item_seized"]
    corrected = {id(e) for e in rng.sample(seizures, 4)}
    week = WeekOfAction(op)
    for i, event in enumerate(truth):
        when = datetime.fromisoformat(event["occurred_at"])
        if id(event) not in corrected:
            at(when, event)
            continue
        # Mistake, voided ten minutes later, then entered again correctly (a new event_id).
        wrong = {**_mistake(event), "event_id": str(uuid5(_NS, f"{op}/mistake/{i}"))}
        offline = len([c for c in timeline if c[3]]) == 0  # the first: its device was offline
        at(when, wrong, late=offline)
        at(when + 10 * minute, b.void(wrong, when + 10 * minute, "quantity mistyped"))
        at(when + 12 * minute, {**event, "occurred_at": (when + 12 * minute).isoformat()})
        week.voids += 1
    plain = [e for e in truth if id(e) not in corrected]
    for event in rng.sample(plain, 6):  # flaky devices resend a sync
        when = datetime.fromisoformat(event["occurred_at"]) + 45 * minute
        at(when, event)
        week.duplicates += 1
    week.sends = _sends(rng, timeline)
    return week


def _sends(
    rng: random.Random, timeline: list[tuple[datetime, int, dict[str, Any], bool]]
) -> list[Send]:
    """Group the timeline into requests: singles, and device syncs of a few events."""
    ordered = sorted(timeline, key=lambda t: (t[0].date(), t[3], t[0], t[1]))
    sends: list[Send] = []
    pending: dict[str, list[dict[str, Any]]] = {}
    day = None
    for when, _, event, _late in ordered:
        if when.date() != day:
            sends += [Send(p, True) for p in pending.values() if p]
            pending, day = {}, when.date()
        if rng.random() < 0.35:
            sends.append(Send([event], False))
            continue
        device = event["source"]["device_id"]
        queue = pending.setdefault(device, [])
        queue.append(event)
        if len(queue) >= rng.randint(3, 12):
            sends.append(Send(queue, True))
            pending[device] = []
    sends += [Send(p, True) for p in pending.values() if p]
    return sends
