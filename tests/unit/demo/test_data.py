"""The reference week of action adds up exactly to the published tally."""

from __future__ import annotations

from collections import Counter

from schemas.parsing import parse_event
from schemas.tally import fold
from services.demo.data import REFERENCE, TEAMS, week_of_action


def test_the_week_adds_up_to_the_published_tally() -> None:
    week = week_of_action()
    events = [parse_event(e) for s in week.sends for e in s.events]
    assert fold(events).metrics == REFERENCE
    assert REFERENCE["cash_seized_pence"] == 79_245_60


def test_the_week_has_duplicates_voids_and_a_void_before_its_target() -> None:
    week = week_of_action()
    events = [e for s in week.sends for e in s.events]
    ids = Counter(e["event_id"] for e in events)
    assert sum(n - 1 for n in ids.values()) == week.duplicates == 6
    voids = [e for e in events if e["type"] == "event_voided"]
    assert len(voids) == week.voids == 4
    position = {e["event_id"]: i for i, e in reversed(list(enumerate(events)))}
    early = [
        v for v in voids if position[v["payload"]["voided_event_id"]] > position[v["event_id"]]
    ]
    assert len(early) == 1


def test_the_week_spans_seven_days_three_counties_and_every_team() -> None:
    events = [e for s in week_of_action().sends for e in s.events]
    assert len({e["occurred_at"][:10] for e in events}) == 7
    areas = {e["location"]["area"] for e in events}
    assert areas == {"Buckinghamshire", "Berkshire", "Oxfordshire"}
    assert {e["actor"]["unit"] for e in events} == {t[0] for t in TEAMS}
    substances = {e["payload"].get("substance") for e in events} - {None}
    assert substances == {"crack", "heroin", "cocaine"}


def test_the_same_seed_gives_the_same_week_and_another_seed_another() -> None:
    a, b = week_of_action(7, "op-a"), week_of_action(7, "op-a")
    assert a.sends == b.sends
    assert week_of_action(8, "op-a").sends != a.sends
    assert len({len(s.events) for s in a.sends}) > 3  # singles and batches of several sizes
