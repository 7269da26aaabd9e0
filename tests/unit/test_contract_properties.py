"""Property tests: JSON round-trip, and the fold's order, void and duplicate laws."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, timedelta, timezone
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import FieldEvent, event_to_dict, parse_event
from schemas.tally import Tally, fold

# Per test, not a global profile: other suites keep their own settings.
contract = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)

OPERATIONS = ("op-alpha", "op-bravo")
ZONES = st.sampled_from(
    [
        UTC,
        ZoneInfo("Europe/London"),
        timezone(timedelta(hours=5, minutes=30)),
        timezone(timedelta(hours=-11)),
    ]
)


def text(max_size: int, *, multi_line: bool = False) -> st.SearchStrategy[str]:
    """Any text the contract takes: no control characters (free text: tab, LF, CR allowed)."""
    chars = st.characters(
        exclude_categories=("Cc", "Cs"), include_characters="\t\n\r" if multi_line else None
    )
    return st.text(chars, min_size=1, max_size=max_size)


def timestamps() -> st.SearchStrategy[str]:
    from datetime import datetime

    return st.datetimes(
        min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=ZONES
    ).map(lambda d: d.isoformat())


quantity = st.integers(1, 1_000_000)
optional_note = st.one_of(st.none(), text(500, multi_line=True))

PAYLOADS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "warrant_executed": st.fixed_dictionaries(
        {"warrant_ref": text(64)}, optional={"premises": optional_note}
    ),
    "arrest_made": st.fixed_dictionaries(
        {
            "person_ref": text(64),
            "age_band": st.sampled_from(["adult", "youth"]),
            "offences": st.lists(text(128), min_size=1, max_size=20),
        }
    ),
    "item_seized": st.one_of(
        st.fixed_dictionaries(
            {
                "item": st.just("drug_wrap"),
                "substance": st.sampled_from(["crack", "heroin", "cocaine", "cannabis", "other"]),
                "quantity": quantity,
            }
        ),
        st.fixed_dictionaries({"item": st.just("mobile_phone"), "quantity": quantity}),
        st.fixed_dictionaries(
            {"item": st.sampled_from(["weapon", "other"]), "quantity": quantity},
            optional={"description": optional_note},
        ),
        st.fixed_dictionaries(
            {
                "item": st.just("cash"),
                "amount_pence": st.integers(1, 100_000_000_000),
                "currency": st.just("GBP"),
            }
        ),
    ),
    "school_visited": st.fixed_dictionaries(
        {"school_ref": text(64)}, optional={"pupils_engaged": st.none() | st.integers(0, 10_000)}
    ),
    "vulnerable_person_engaged": st.fixed_dictionaries(
        {"person_ref": text(64), "safeguarding_referral": st.booleans()}
    ),
}
COUNTED_KINDS = tuple(PAYLOADS)


@st.composite
def raw_events(draw: st.DrawFn, kinds: tuple[str, ...] = COUNTED_KINDS) -> dict[str, Any]:
    kind = draw(st.sampled_from(kinds))
    if kind == "event_voided":
        payload = {
            "voided_event_id": str(draw(st.uuids())),
            "reason": draw(text(500, multi_line=True)),
        }
    else:
        payload = draw(PAYLOADS[kind])
    coordinate = st.none() | st.integers(-90, 90) | st.floats(-90, 90, allow_nan=False)
    return {
        "event_id": str(draw(st.uuids())),
        "operation_id": draw(
            st.sampled_from(OPERATIONS) | st.from_regex(r"[a-z0-9][a-z0-9-]{2,63}", fullmatch=True)
        ),
        "type": kind,
        "schema_version": 1,
        "occurred_at": draw(timestamps()),
        "actor": {"officer_id": draw(text(64)), "unit": draw(st.sampled_from(["A", "B", "C"]))},
        "location": draw(
            st.fixed_dictionaries(
                {"area": st.sampled_from(["Buckinghamshire", "Berkshire", "Oxfordshire"])},
                optional={"lat": coordinate, "lon": coordinate},
            )
        ),
        "source": draw(
            st.fixed_dictionaries(
                {"device_id": text(64)}, optional={"app_version": st.none() | text(32)}
            )
        ),
        "payload": payload,
    }


def counted_events(max_size: int = 15) -> st.SearchStrategy[list[FieldEvent]]:
    return st.lists(
        raw_events().map(parse_event), max_size=max_size, unique_by=lambda e: e.event_id
    )


def void_of(target: FieldEvent, event_id: UUID, operation_id: str | None = None) -> FieldEvent:
    dumped = event_to_dict(target)
    return parse_event(
        {
            **{k: dumped[k] for k in ("occurred_at", "actor", "location", "source")},
            "event_id": str(event_id),
            "operation_id": operation_id or target.operation_id,
            "type": "event_voided",
            "schema_version": 1,
            "payload": {"voided_event_id": str(target.event_id), "reason": "entered in error"},
        }
    )


@contract
@given(raw_events(COUNTED_KINDS + ("event_voided",)))
def test_any_valid_event_round_trips_through_json_unchanged(raw: dict[str, Any]) -> None:
    event = parse_event(json.dumps(raw))
    dumped = event_to_dict(event)
    again = parse_event(json.dumps(dumped).encode())
    assert again == event
    assert event_to_dict(again) == dumped
    assert event_to_dict(parse_event(raw)) == dumped


@contract
@given(counted_events(), st.randoms(use_true_random=False))
def test_fold_is_independent_of_order(events: list[FieldEvent], rnd: Any) -> None:
    voids = [void_of(e, UUID(int=i + 1)) for i, e in enumerate(events[::3])]
    everything = events + voids + events[:2]  # with exact duplicates
    shuffled = list(everything)
    rnd.shuffle(shuffled)
    assert fold(shuffled) == fold(everything)


@contract
@given(counted_events(), st.data())
def test_void_cancels_its_target_exactly_whichever_arrives_first(
    events: list[FieldEvent], data: st.DataObject
) -> None:
    if not events:
        return
    target = data.draw(st.sampled_from(events))
    void = void_of(target, UUID(int=0))
    position = data.draw(st.integers(0, len(events)))
    with_void = events[:position] + [void] + events[position:]
    without_target = [e for e in events if e.event_id != target.event_id]
    assert fold(with_void) == fold(without_target)
    assert fold(with_void + [void_of(target, UUID(int=1))]) == fold(without_target)  # twice
    foreign = void_of(target, UUID(int=2), operation_id="another-operation")
    assert fold([foreign, *events]) == fold(events)


@contract
@given(counted_events(), st.data())
def test_duplicate_event_id_counted_once(events: list[FieldEvent], data: st.DataObject) -> None:
    if not events:
        return
    dupes = data.draw(st.lists(st.sampled_from(events), min_size=1, max_size=5))
    assert fold(events + dupes) == fold(events)
    assert fold(dupes + events) == fold(events)


@contract
@given(counted_events(), st.randoms(use_true_random=False))
def test_incremental_deltas_sum_to_the_totals(events: list[FieldEvent], rnd: Any) -> None:
    stream = events + [void_of(e, UUID(int=i + 1)) for i, e in enumerate(events[::2])]
    rnd.shuffle(stream)
    tally, applied = Tally(), Counter[Any]()
    for event in stream:
        for delta in tally.add(event):
            applied[delta.key] += delta.delta
    assert {k: v for k, v in applied.items() if v} == tally.totals().rows == fold(stream).rows
