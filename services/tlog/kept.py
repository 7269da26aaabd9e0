"""Is the database today consistent with a checkpoint an auditor kept?

This is what catches the careful rewrite: someone who controls the database changes a payload
and recomputes every chain hash, the chain head and even the stored tree, so the chain checks
out; but the tree recomputed from today's bodies no longer has the root the ledger signed then.

References are the kept checkpoint and every checkpoint in ``tlog.checkpoints`` whose signature
verifies with the ledger's public key (a rewriter without the key cannot forge those). The
first differing leaf lies after the largest reference that still agrees and within the smallest
that does not; it is named exactly when the stored leaf hashes (level 0 of the tree) still
disagree with the bodies there, or when that window is one leaf wide. Leaves after the largest
reference are covered by no signature at all (appended behind the ledger's back, or not yet
signed: checkpoints come every few seconds while events arrive).

Pure: `check` takes rows and notes; `load` reads them from PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from schemas.canonical import canonical_json
from services.common.db import LEDGER_SCHEMA
from services.tlog.merkle import prefix_roots
from services.tlog.verifier import (
    Checkpoint,
    VerificationError,
    VerifierKey,
    leaf_hash,
    open_checkpoint,
)


@dataclass(frozen=True, slots=True)
class Reference:
    """A signed tree head the database must still reproduce."""

    size: int
    root: bytes
    source: str  # "the kept checkpoint" or "ledger checkpoint of <time>"


@dataclass
class KeptReport:
    """The outcome; ``ok`` only when every reference agrees and every leaf is covered."""

    operation_id: str
    leaves: int = 0
    kept: Checkpoint | None = None
    references: int = 0
    problems: list[str] = field(default_factory=list)
    first_differing_seq: int | None = None  # 1-based chain position (leaf index + 1)
    first_differing_event: str | None = None
    window: tuple[int, int] | None = None  # seqs [a, b] when the leaf is not pinned down

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "ok": self.ok,
            "leaves": self.leaves,
            "kept_checkpoint": None
            if self.kept is None
            else {"origin": self.kept.origin, "size": self.kept.size},
            "signed_references": self.references,
            "first_differing_seq": self.first_differing_seq,
            "first_differing_event": self.first_differing_event,
            "window": list(self.window) if self.window else None,
            "problems": self.problems,
        }


def check(
    operation_id: str,
    origin: str,
    key: VerifierKey,
    kept_note: str,
    rows: Sequence[Mapping[str, Any]],
    stored_leaves: Mapping[int, bytes],
    ledger_notes: Sequence[tuple[str, str]],
) -> KeptReport:
    """Compare the tree of ``rows`` (seq, event_id, body) with the kept and signed checkpoints.

    ``stored_leaves`` maps leaf index to the stored level-0 hash; ``ledger_notes`` are
    (issued_at, note) of the checkpoints stored in the ledger.
    """
    report = KeptReport(operation_id)
    try:
        report.kept = open_checkpoint(kept_note, key, origin)
    except VerificationError as exc:
        report.problems.append(f"the kept checkpoint does not verify: {exc}")
        return report
    refs = [Reference(report.kept.size, report.kept.root, "the kept checkpoint")]
    for issued_at, note in ledger_notes:
        try:
            cp = open_checkpoint(note, key, origin)
        except VerificationError as exc:
            report.problems.append(f"a stored checkpoint of {issued_at} is not the ledger's: {exc}")
            continue
        refs.append(Reference(cp.size, cp.root, f"the ledger's checkpoint of {issued_at}"))
    report.references = len(refs) - 1
    ordered = sorted(rows, key=lambda r: int(r["seq"]))
    hashes = [leaf_hash(canonical_json(r["body"])) for r in ordered]
    n = report.leaves = len(hashes)
    for i, r in enumerate(ordered):
        if int(r["seq"]) != i + 1:
            report.problems.append(f"chain positions are not 1..{n}: seq {r['seq']} at {i + 1}")
            break
    roots = prefix_roots(hashes, {r.size for r in refs if r.size <= n})
    bad = sorted((r for r in refs if roots.get(r.size) != r.root), key=lambda r: r.size)
    good = [r.size for r in refs if roots.get(r.size) == r.root]
    if bad:
        first_bad = bad[0]
        lo = max((s for s in good if s < first_bad.size), default=0)
        hi = min(first_bad.size, n + 1)  # leaf indices [lo, hi) hold the first difference
        why = (
            f"the database has {n} events, {first_bad.source} covers {first_bad.size}"
            if first_bad.size > n
            else f"the database's tree at size {first_bad.size} does not have the root"
            f" of {first_bad.source}"
        )
        report.problems.append(why)
        _pin(report, ordered, hashes, stored_leaves, lo, hi)
        return report
    covered = max(good, default=0)
    if n > covered:
        report.problems.append(
            f"events at seq {covered + 1}..{n} are covered by no checkpoint the ledger signed"
            " (appended behind its back, or not signed yet: issue one and verify again)"
        )
        _name(report, ordered, covered)
    return report


def _pin(
    report: KeptReport,
    rows: Sequence[Mapping[str, Any]],
    hashes: Sequence[bytes],
    stored: Mapping[int, bytes],
    lo: int,
    hi: int,
) -> None:
    for i in range(lo, min(hi, len(hashes))):
        if i in stored and stored[i] != hashes[i]:
            _name(report, rows, i)
            report.problems.append(
                f"event at seq {i + 1} ({report.first_differing_event}) differs from the leaf"
                " the ledger stored for it"
            )
            return
    if hi - lo == 1 or lo == len(hashes):
        _name(report, rows, lo)
        return
    report.window = (lo + 1, hi)
    report.problems.append(
        f"the first differing event is at seq {lo + 1}..{hi} (between the last signed tree"
        " that still agrees and the first that does not)"
    )


def _name(report: KeptReport, rows: Sequence[Mapping[str, Any]], index: int) -> None:
    report.first_differing_seq = index + 1
    report.first_differing_event = str(rows[index]["event_id"]) if index < len(rows) else None


async def load(
    conn: asyncpg.Connection, operation_id: str, schema: str = LEDGER_SCHEMA
) -> tuple[list[asyncpg.Record], dict[int, bytes], list[tuple[str, str]]]:
    """The rows, stored leaf hashes and stored ledger checkpoints of one operation."""
    rows = await conn.fetch(
        f"SELECT seq, event_id, body FROM {schema}.events"  # noqa: S608 - fixed schema name
        " WHERE operation_id = $1 ORDER BY seq",
        operation_id,
    )
    leaves = {
        int(r["idx"]): bytes(r["hash"])
        for r in await conn.fetch(
            f"SELECT idx, hash FROM {schema}.merkle_nodes"  # noqa: S608
            " WHERE operation_id = $1 AND level = 0",
            operation_id,
        )
    }
    notes = [
        (r["issued_at"].isoformat(), r["note"])
        for r in await conn.fetch(
            "SELECT issued_at, note FROM tlog.checkpoints WHERE operation_id = $1 ORDER BY size",
            operation_id,
        )
    ]
    return list(rows), leaves, notes
