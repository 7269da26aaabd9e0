"""verify_rows: the chain and the totals recomputed from event rows, naming what broke."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta
from typing import Any

from schemas.canonical import canonical_json, chain_digest, chain_hash
from schemas.examples import example_events
from services.audit.verify import Projection, replay_derived, verify_rows

from .conftest import Rows, stored, totals_of


def _projection(rows: Rows) -> Projection:
    totals = totals_of(rows)
    return Projection(totals=totals, head=(rows[-1]["seq"], rows[-1]["hash"]), contributions=totals)


def test_intact_chain_and_totals_verify_clean(chain: Rows) -> None:
    report = verify_rows("op", chain, _projection(chain))
    assert report.ok
    assert report.first_broken_seq is None
    assert report.events == 13
    # 13 sample events: one phone seizure (3 phones) is voided
    assert report.recomputed["mobile_phones_seized"] == 0
    assert report.recomputed["cash_seized_pence"] == 1_250_000
    assert report.to_dict()["chain"]["intact"] is True


def test_edited_payload_is_named_at_its_seq(chain: Rows) -> None:
    projection = _projection(chain)
    chain[6]["body"] = copy.deepcopy(chain[6]["body"])
    chain[6]["body"]["payload"]["quantity"] = 99
    report = verify_rows("op", chain, projection)
    assert not report.ok
    assert report.first_broken_seq == 7
    assert "edited" in report.chain_problems[0].reason
    assert [d.metric for d in report.metric_diffs] == ["weapons_seized"]
    assert (report.metric_diffs[0].expected, report.metric_diffs[0].actual) == (99, 1)


def test_deleted_row_is_named_by_the_missing_seq(chain: Rows) -> None:
    projection = _projection(chain)
    del chain[4]
    report = verify_rows("op", chain, projection)
    assert report.first_broken_seq == 5
    assert "seq 5 missing" in report.chain_problems[0].reason


def test_forged_row_appended_after_the_head_is_named(chain: Rows) -> None:
    projection = _projection(chain)
    forged_body = copy.deepcopy(chain[0]["body"])
    forged_body["event_id"] = "00000000-0000-4000-8000-000000000001"
    forged = dict(chain[0], seq=14, event_id=forged_body["event_id"], body=forged_body)
    forged["prev_hash"] = chain[-1]["hash"]
    forged["hash"] = chain_hash(forged_body, forged["prev_hash"])  # a careful forger
    report = verify_rows("op", [*chain, forged], projection)
    assert report.first_broken_seq == 14
    assert [d.metric for d in report.metric_diffs] == ["warrants_executed"]


def test_forged_row_with_a_wrong_hash_breaks_at_its_seq(chain: Rows) -> None:
    forged = dict(chain[-1], seq=14, hash="f" * 64, prev_hash=chain[-1]["hash"])
    report = verify_rows("op", [*chain, forged], Projection(totals_of(chain), head=(14, "f" * 64)))
    assert report.first_broken_seq == 14


def test_column_edited_without_touching_the_body_is_detected(chain: Rows) -> None:
    chain[2]["area"] = "Kent"
    report = verify_rows("op", chain, _projection(chain))
    assert report.first_broken_seq == 3
    assert "area" in report.chain_problems[0].reason


def test_head_moved_back_is_detected(chain: Rows) -> None:
    report = verify_rows("op", chain, Projection(totals_of(chain), head=(12, chain[11]["hash"])))
    assert report.first_broken_seq == 13


def test_each_differing_projection_row_is_named(chain: Rows) -> None:
    totals = totals_of(chain)
    key = next(k for k in totals if k[0] == "arrests" and k[1] == "adult")
    totals[key] += 2
    report = verify_rows("op", chain, Projection(totals, head=(13, chain[-1]["hash"])))
    assert report.chain_intact and not report.totals_match
    assert [(d.metric, d.expected, d.actual) for d in report.metric_diffs] == [("arrests", 2, 4)]
    assert [(d.metric, d.detail, d.expected, d.actual) for d in report.row_diffs] == [
        ("arrests", "adult", 1, 3)
    ]


def test_contributions_that_disagree_with_totals_are_named(chain: Rows) -> None:
    totals = totals_of(chain)
    contributions = dict(totals)
    key = ("schools_visited", "", "Buckinghamshire", "Stronghold Thames Valley", date(2026, 11, 16))
    contributions[key] = contributions.get(key, 0) + 1
    report = verify_rows(
        "op", chain, Projection(totals, head=(13, chain[-1]["hash"]), contributions=contributions)
    )
    assert not report.ok
    assert [(d.metric, d.expected, d.actual) for d in report.contribution_diffs] == [
        ("schools_visited", contributions[key], totals.get(key, 0))
    ]


def test_empty_operation_is_intact() -> None:
    report = verify_rows("op", [], Projection({}, head=None))
    assert report.ok and report.events == 0


def _with_text(rows: Rows) -> Rows:
    """The rows as read from PostgreSQL since `body` keeps its text: the canonical bytes."""
    return [dict(r, body_text=canonical_json(r["body"]).decode()) for r in rows]


def test_the_hash_is_checked_over_the_stored_text_itself(chain: Rows) -> None:
    rows = _with_text(chain)
    assert verify_rows("op", rows, _projection(rows)).ok
    # What a JSON reader makes of the text cannot break an honest row: here the text says -0.0,
    # was hashed as written, and the parsed body (as jsonb would give it) says 0.0.
    first = rows[0]
    text = canonical_json(first["body"]).replace(b'"lon":-0.8124', b'"lon":-0.0')
    assert b'"lon":-0.0' in text
    rows[0] = dict(first, body_text=text.decode(), hash=chain_digest(text, first["prev_hash"]))
    rows[0]["body"] = copy.deepcopy(first["body"])
    rows[0]["body"]["location"]["lon"] = 0.0
    relinked = link_from(rows, 1)
    assert verify_rows("op", relinked, _projection(relinked)).chain_intact


def test_canonical_text_with_another_hash_is_an_edit(chain: Rows) -> None:
    rows = _with_text(chain)
    projection = _projection(rows)
    edited = copy.deepcopy(rows[3]["body"])
    edited["actor"]["unit"] = "Someone else"
    rows[3] = dict(rows[3], body=edited, body_text=canonical_json(edited).decode())
    report = verify_rows("op", rows, projection)
    assert report.first_broken_seq == 4 and "edited" in report.chain_problems[0].reason


def test_rows_stored_before_the_text_was_kept_verify_in_canonical_form(chain: Rows) -> None:
    # jsonb gave its own spelling back (spaces, its key order): checked as it was hashed.
    rows = [dict(r, body_text=json.dumps(r["body"], sort_keys=False)) for r in chain]
    assert verify_rows("op", rows, _projection(rows)).ok
    rows[2]["body"] = dict(rows[2]["body"], principal="intruder")
    rows[2]["body_text"] = json.dumps(rows[2]["body"])
    assert verify_rows("op", rows, _projection(rows)).first_broken_seq == 3


def link_from(rows: Rows, start: int) -> Rows:
    """Recompute hashes from ``start`` on, as a writer would have (each row hashed as its text)."""
    out = [dict(r) for r in rows]
    for i in range(start, len(out)):
        out[i]["prev_hash"] = out[i - 1]["hash"]
        out[i]["hash"] = chain_digest(out[i]["body_text"].encode(), out[i]["prev_hash"])
    return out


def _derived(rows: Rows) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stored-like contribution and void rows of a chain (as the ledger's columns name them)."""
    contributions, voids = replay_derived(rows)
    return (
        [
            {
                "event_id": eid,
                "metric": x.c.metric,
                "detail": x.c.detail,
                "area": x.c.area,
                "unit": x.c.unit,
                "day": x.c.day,
                "delta": x.c.delta,
                "occurred_at": x.occurred_at,
                "recorded_at": x.recorded_at,
            }  # fmt: skip
            for eid, x in contributions.items()
        ],
        [{"void_event_id": v, "target_event_id": t, "applied": a} for v, (t, a) in voids.items()],
    )


def test_void_arriving_before_its_target_removes_it_at_the_later_instant(linker) -> None:
    events = stored(
        example_events(),
        recorded=[f"2026-11-22T12:{i:02d}:00+00:00" for i in range(13)],
    )
    void = next(e for e in events if e["type"] == "event_voided")
    target = next(e for e in events if e["event_id"] == void["payload"]["voided_event_id"])
    others = [e for e in events if e not in (void, target)]
    target = {**target, "recorded_at": "2026-11-22T12:30:00+00:00"}  # arrives last
    rows = linker([void, *others, target])  # the void waits for its target
    contributions, voids = _derived(rows)
    removal = next(c for c in contributions if c["event_id"] == void["event_id"])
    assert removal["delta"] == -3  # the three phones, cancelled
    assert removal["recorded_at"] == datetime.fromisoformat(target["recorded_at"])
    assert voids == [
        {"void_event_id": void["event_id"], "target_event_id": target["event_id"], "applied": True}
    ]
    totals = totals_of(rows)
    head = (rows[-1]["seq"], rows[-1]["hash"])
    clean = Projection(totals, head, totals, contribution_rows=contributions, void_rows=voids)
    assert verify_rows("op", rows, clean).ok


def test_edited_contribution_row_and_void_status_are_named(chain: Rows) -> None:
    contributions, voids = _derived(chain)
    moved = next(c for c in contributions if c["metric"] == "arrests")
    moved["day"] = moved["day"] + timedelta(days=1)
    voids[0]["applied"] = False
    totals = totals_of(chain)
    projection = Projection(
        totals, (13, chain[-1]["hash"]), totals, contribution_rows=contributions, void_rows=voids
    )
    report = verify_rows("op", chain, projection)
    assert not report.ok and report.chain_intact and report.totals_match
    seq_of = {str(r["event_id"]): r["seq"] for r in chain}
    assert [(d.table, d.seq) for d in report.derived_diffs] == [
        ("contributions", seq_of[moved["event_id"]]),
        ("voids", seq_of[voids[0]["void_event_id"]]),
    ]
    assert report.to_dict()["derived"]["match"] is False
