"""Totals over the real ledger: the fold of the events, both timelines, groups, freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from schemas.tally import METRICS

from .ledger import Ledger, fold_metrics, make_event, void_of

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


async def test_totals_equal_the_fold_of_the_events(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    events = [
        make_event(op_id, "warrant_executed", at(0)),
        make_event(op_id, "arrest_made", at(0.5), age_band="adult"),
        make_event(op_id, "arrest_made", at(0.6), age_band="youth", area="Berkshire"),
        make_event(op_id, "item_seized", at(1), item="drug_wrap", substance="crack", quantity=40),
        make_event(op_id, "item_seized", at(1), item="cash", amount_pence=1_234_56, currency="GBP"),
        make_event(op_id, "school_visited", at(26), area="Oxfordshire"),
    ]
    await ledger.submit(events[:3], at(1))
    await ledger.submit(events[3:], at(27))
    voided = events[1]
    void = void_of(voided, at(28))
    await ledger.submit([void], at(28))

    r = await client.get(f"/v1/operations/{op_id}/totals", headers=token("supervisor", op_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["operation_id"] == op_id
    assert list(body["metrics"]) == list(METRICS)  # every metric, zeros included
    assert body["metrics"] == fold_metrics([*events, void])
    assert body["metrics"]["arrests"] == 1  # the adult arrest was voided
    assert body["metrics"]["cash_seized_pence"] == 123456
    assert body["groups"] == []


async def test_known_at_and_as_of_are_two_timelines(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    early = make_event(op_id, "warrant_executed", at(0))  # recorded promptly
    late = make_event(op_id, "warrant_executed", at(1))  # happened at 10:00, uploaded at 15:00
    await ledger.submit([early], at(0.1))
    await ledger.submit([late], at(6))
    await ledger.submit([void_of(early, at(8))], at(8))  # voided at 17:00
    headers = token("auditor")

    async def warrants(**params: str) -> int:
        r = await client.get(f"/v1/operations/{op_id}/totals", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return int(r.json()["metrics"]["warrants_executed"])

    assert await warrants() == 1  # now: the late one only (early was voided)
    # The tally as briefed at 12:00: the late event was not known yet, the void neither.
    assert await warrants(known_at=at(3).isoformat()) == 1
    assert await warrants(known_at=at(7).isoformat()) == 2  # both known, void not yet
    # What had happened by 10:30, as we know it now: the late event counts, the voided does not.
    assert await warrants(as_of=at(1.5).isoformat()) == 1
    assert await warrants(as_of=at(0.5).isoformat()) == 0
    # Both timelines: happened by 10:30 and known at 16:00 -> early (not yet voided) and late.
    assert await warrants(as_of=at(1.5).isoformat(), known_at=at(7).isoformat()) == 2
    assert await warrants(as_of=at(1.5).isoformat(), known_at=at(3).isoformat()) == 1


async def test_grouped_parts_sum_to_the_whole(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    events = [
        make_event(op_id, "arrest_made", at(h), area=area, unit=unit, age_band=band)
        for h, area, unit, band in [
            (0, "Berkshire", "Stronghold A", "adult"),
            (1, "Berkshire", "Stronghold B", "youth"),
            (25, "Oxfordshire", "Stronghold A", "adult"),
        ]
    ] + [
        make_event(
            op_id,
            "item_seized",
            at(2),
            area="Oxfordshire",
            item="drug_wrap",
            substance=s,
            quantity=q,
        )
        for s, q in [("heroin", 7), ("cocaine", 5)]
    ]
    await ledger.submit(events, at(30))
    headers = token("supervisor", op_id)
    for group_by, time_travel in [
        (["area"], {}),
        (["unit"], {}),
        (["day"], {}),
        (["item"], {}),
        (["area", "day", "unit", "item"], {}),
        (["area", "item"], {"as_of": at(24).isoformat()}),
    ]:
        r = await client.get(
            f"/v1/operations/{op_id}/totals",
            params={"group_by": group_by, **time_travel},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["groups"], group_by
        for metric in METRICS:
            parts = sum(g["metrics"][metric] for g in body["groups"])
            assert parts == body["metrics"][metric], (group_by, metric)
        for g in body["groups"]:
            assert set(g) == {*group_by, "metrics"}

    r = await client.get(
        f"/v1/operations/{op_id}/totals", params={"group_by": "item"}, headers=headers
    )
    by_item = {g["item"]: g["metrics"] for g in r.json()["groups"]}
    assert by_item["adult"]["arrests"] == 2 and by_item["youth"]["arrests"] == 1
    assert by_item["heroin"]["drug_wraps_seized"] == 7
    r = await client.get(
        f"/v1/operations/{op_id}/totals", params={"group_by": "day"}, headers=headers
    )
    days = {g["day"]: g["metrics"]["arrests"] for g in r.json()["groups"]}
    assert days == {"2026-11-17": 2, "2026-11-18": 1}


async def test_every_answer_states_its_freshness(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token, query_settings
) -> None:
    await ledger.submit(
        [make_event(op_id, "school_visited", at(0))], at(0.2), partition=7, highwater_ahead=3
    )
    r = await client.get(f"/v1/operations/{op_id}/totals", headers=token("supervisor", op_id))
    fresh = r.json()["freshness"]
    assert fresh["consumer_group"] == query_settings.consumer_group
    assert fresh["topic"] == query_settings.topic
    p7 = next(p for p in fresh["partitions"] if p["partition"] == 7)
    assert p7["last_offset"] == ledger.offsets[7]
    assert p7["lag"] == 3
    assert datetime.fromisoformat(p7["last_event_at"]) == at(0.2)
    assert fresh["lag"] >= 3


async def test_operations_list_shows_headline_totals_in_scope(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    other = op_id + "-other"
    await ledger.submit(
        [make_event(op_id, "item_seized", at(0), item="weapon", quantity=2)], at(0.1)
    )
    await ledger.submit([make_event(other, "warrant_executed", at(0))], at(0.1))

    r = await client.get("/v1/operations", headers=token("supervisor", op_id))
    assert r.status_code == 200, r.text
    listed = {o["operation_id"]: o for o in r.json()["operations"]}
    assert list(listed) == [op_id]
    assert listed[op_id]["metrics"]["weapons_seized"] == 2
    assert "freshness" in r.json()

    r = await client.get("/v1/operations", headers=token("auditor"))
    listed = {o["operation_id"]: o for o in r.json()["operations"]}
    assert {op_id, other} <= set(listed)
    assert listed[other]["metrics"]["warrants_executed"] == 1


async def test_summary_is_the_press_release_list(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    events = [
        make_event(op_id, "warrant_executed", at(0)),
        make_event(op_id, "warrant_executed", at(1)),
        make_event(op_id, "arrest_made", at(1), age_band="adult"),
        make_event(op_id, "item_seized", at(1), item="drug_wrap", substance="heroin", quantity=30),
        make_event(op_id, "item_seized", at(1), item="drug_wrap", substance="crack", quantity=12),
        make_event(
            op_id, "item_seized", at(1), item="cash", amount_pence=7_924_560, currency="GBP"
        ),
        make_event(op_id, "vulnerable_person_engaged", at(2)),
    ]
    await ledger.submit(events, at(3))
    r = await client.get(f"/v1/operations/{op_id}/summary", headers=token("supervisor", op_id))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/markdown")
    assert r.text == (
        f"# {op_id}\n\n"
        "- 2 warrants executed\n"
        "- 1 adult arrested\n"
        "- 42 wraps of crack and heroin seized\n"
        "- £79,245.60 in cash seized\n"
        "- 1 vulnerable person engaged\n"
    )
    r = await client.get(
        f"/v1/operations/{op_id}/summary",
        params={"as_of": at(0.5).isoformat()},
        headers=token("supervisor", op_id),
    )
    assert r.text == f"# {op_id}\n\n- 1 warrant executed\n"


async def test_a_late_event_changes_an_as_of_read_already_made(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    await ledger.submit(
        [make_event(op_id, "item_seized", at(0), item="weapon", quantity=1)], at(0.1)
    )
    url = f"/v1/operations/{op_id}/totals"
    params = {"as_of": at(2).isoformat(), "known_at": at(10).isoformat()}
    headers = token("supervisor", op_id)
    first = await client.get(url, params=params, headers=headers)
    assert first.json()["metrics"]["weapons_seized"] == 1
    # Uploaded late: happened at 10:00, recorded at 14:00; the same read now includes it.
    await ledger.submit([make_event(op_id, "item_seized", at(1), item="weapon", quantity=2)], at(5))
    again = await client.get(url, params=params, headers=headers)
    assert again.json()["metrics"]["weapons_seized"] == 3
