"""`verify --checkpoint`'s core: the database's tree against a kept and the ledger's checkpoints."""

from __future__ import annotations

import uuid
from typing import Any

from schemas.canonical import canonical_json
from services.tlog import merkle
from services.tlog.kept import check
from services.tlog.keys import Signer
from services.tlog.verifier import Checkpoint, leaf_hash, root_of

ORIGIN = "ledger.test/op-k"
LEDGER = Signer.generate("ledger.test")


def rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "seq": i + 1,
            "event_id": str(uuid.uuid4()),
            "body": {"n": i, "payload": {"ref": f"W-{i}"}},
        }
        for i in range(n)
    ]


def signed(rs: list[dict[str, Any]], size: int) -> str:
    root = root_of([leaf_hash(canonical_json(r["body"])) for r in rs[:size]])
    return LEDGER.sign_note(Checkpoint(ORIGIN, size, root).text())


def stored_leaves(rs: list[dict[str, Any]]) -> dict[int, bytes]:
    return {i: leaf_hash(canonical_json(r["body"])) for i, r in enumerate(rs)}


def run(rs, kept, leaves, notes):  # type: ignore[no-untyped-def]
    return check("op-k", ORIGIN, LEDGER.public, kept, rs, leaves, notes)


def test_intact_database_agrees() -> None:
    rs = rows(30)
    report = run(
        rs, signed(rs, 20), stored_leaves(rs), [("t1", signed(rs, 10)), ("t2", signed(rs, 30))]
    )
    assert report.ok, report.problems
    assert report.references == 2


def test_careful_rewrite_named_by_the_stored_leaf() -> None:
    original = rows(30)
    kept, leaves = signed(original, 25), stored_leaves(original)
    rewritten = [dict(r) for r in original]
    rewritten[11] = {**rewritten[11], "body": {"n": 11, "payload": {"ref": "FORGED"}}}
    report = run(rewritten, kept, leaves, [])
    assert not report.ok
    assert report.first_differing_seq == 12
    assert report.first_differing_event == original[11]["event_id"]


def test_rewrite_of_the_tree_too_is_bracketed_by_signed_checkpoints() -> None:
    original = rows(30)
    notes = [(f"t{s}", signed(original, s)) for s in (5, 10, 15, 20)]
    kept = signed(original, 25)
    rewritten = [dict(r) for r in original]
    rewritten[11] = {**rewritten[11], "body": {"forged": True}}
    report = run(rewritten, kept, stored_leaves(rewritten), notes)  # stored tree rewritten too
    assert not report.ok
    assert report.window == (11, 15)  # after the size-10 checkpoint, within the size-15 one


def test_removed_event_and_forged_append() -> None:
    original = rows(12)
    kept = signed(original, 12)
    removed = [{**r, "seq": i + 1} for i, r in enumerate(original[:4] + original[5:])]
    report = run(removed, kept, stored_leaves(original), [])
    assert not report.ok and report.first_differing_seq == 5
    forged = [*original, {"seq": 13, "event_id": "f", "body": {"forged": 1}}]
    report = run(forged, kept, stored_leaves(forged), [("t", kept)])
    assert not report.ok and report.first_differing_seq == 13
    assert "covered by no checkpoint" in report.problems[0]


def test_a_checkpoint_from_another_key_is_refused() -> None:
    rs = rows(3)
    other = Signer.generate("ledger.test")
    kept = other.sign_note(Checkpoint(ORIGIN, 3, merkle.root(lambda k: b"", 0)).text())
    report = run(rs, kept, {}, [])
    assert not report.ok and "does not verify" in report.problems[0]
