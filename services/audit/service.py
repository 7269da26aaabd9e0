"""Audit's entry point: the use cases over one database connection (history, verify, export).

Other services (query) import only this module of audit; what they need of its inner modules
(`View`, `HistoryFilter`) is re-exported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from services.audit import repository as repo
from services.audit.export import (
    Format,
    View,
    build_manifest,
    bundle_files,
    leaves_file,
    select_rows,
)
from services.audit.export import write_bundle as _write
from services.audit.repository import HistoryFilter
from services.audit.verify import Projection, VerifyReport, verify_rows
from services.common.db import LEDGER_SCHEMA
from services.tlog import checkpoints
from services.tlog.keys import Signer

__all__ = [
    "HistoryFilter",
    "UnknownOperation",
    "View",
    "disclosure",
    "export_operation",
    "history_page",
    "late_events",
    "verify_operation",
]


class UnknownOperation(Exception):
    """No event of this operation is in the ledger: there is nothing to give evidence of."""


def _row(record: asyncpg.Record) -> dict[str, Any]:
    row = dict(record)
    if isinstance(row["body"], str | bytes):  # a connection without the json codec
        row["body"] = orjson.loads(row["body"])
    return row


async def verify_operation(
    conn: asyncpg.Connection, operation_id: str, *, schema: str = LEDGER_SCHEMA
) -> VerifyReport:
    """Recompute the chain and totals of one operation from its events, in one snapshot."""
    # One snapshot, so a batch the aggregator commits meanwhile cannot look like a mismatch.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await repo.chain_rows(conn, operation_id, schema=schema)
        head = await repo.chain_head(conn, operation_id, schema=schema)
        totals = await repo.totals(conn, operation_id, schema=schema)
        contributions = await repo.contribution_sums(conn, operation_id, schema=schema)
        contribution_rows = await repo.contribution_rows(conn, operation_id, schema=schema)
        void_rows = await repo.void_rows(conn, operation_id, schema=schema)
        rollup_rows = await repo.rollup_rows(conn, operation_id, schema=schema)
        closed_after = await repo.closure_offset(conn, operation_id)
    projection = Projection(
        totals,
        head,
        contributions,
        contribution_rows=[dict(r) for r in contribution_rows],
        void_rows=[dict(r) for r in void_rows],
        rollup_rows=[dict(r) for r in rollup_rows],
        closed_after_offset=closed_after,
    )
    return verify_rows(operation_id, [_row(r) for r in rows], projection)


async def export_operation(
    conn: asyncpg.Connection,
    operation_id: str,
    path: Path,
    *,
    fmt: Format,
    view: View,
    created_by: str,
    signer: Signer | None = None,
) -> dict[str, Any]:
    """Write the operation's evidence bundle to ``path``; return its manifest.

    The bundle carries the signed checkpoint of exactly its events (``checkpoint``) and their
    leaves (``leaves.jsonl``) when the ledger signed that size, or when ``signer`` is given
    (then it signs it now); otherwise the manifest's ``tree`` is null.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await repo.chain_rows(conn, operation_id)
        head = await repo.chain_head(conn, operation_id)
        if not rows and head is None:
            # An empty bundle would verify as "intact": refuse it, so a mistyped id is noticed.
            raise UnknownOperation(f"no event of operation {operation_id!r} is in the ledger")
        if view.as_of is None and view.known_at is None:
            claimed = await repo.totals(conn, operation_id)
        else:
            claimed = await repo.contribution_sums(
                conn, operation_id, as_of=view.as_of, known_at=view.known_at
            )
    selected = select_rows([_row(r) for r in rows], view)
    data, sheet = bundle_files(selected, fmt)
    manifest = build_manifest(
        operation_id,
        selected,
        data,
        "jsonl",
        claimed=claimed,
        live_head=head,
        view=view,
        created_at=datetime.now(UTC),
        created_by=created_by,
        sheet=sheet,
    )
    extra: dict[str, bytes] = {}
    manifest["tree"] = None
    if selected:
        size = len(selected)
        stored = await checkpoints.at_size(conn, operation_id, size)
        if stored is None and signer is not None:
            stored = await checkpoints.issue(conn, operation_id, signer, "demand", size=size)
        if stored is not None:
            extra = {"checkpoint": stored.note.encode(), "leaves.jsonl": leaves_file(selected)}
            manifest["tree"] = {
                "size": size,
                "checkpoint_file": "checkpoint",
                "leaves_file": "leaves.jsonl",
                "leaf": "canonical JSON of each event's body, one per line, in chain order",
            }
    _write(path, manifest, data, sheet, extra)
    return manifest


def disclosure(manifest: Mapping[str, Any], bundle: bytes) -> dict[str, Any]:
    """What the access log keeps of one export: which events went out, in which view, and the
    SHA-256 of the file handed over (so a copy found later can be traced to this row)."""
    sheet = manifest.get("spreadsheet")
    return {
        "format": "csv" if sheet else manifest["events_format"],
        **manifest["view"],
        "first_seq": manifest["chain"]["first_seq"],
        "last_seq": manifest["chain"]["last_seq"],
        "events": manifest["counts"]["events"],
        "in_view": manifest["counts"]["in_view"],
        "events_sha256": manifest["events_sha256"],
        "spreadsheet_sha256": sheet["sha256"] if sheet else None,
        "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
    }


async def history_page(
    conn: asyncpg.Connection,
    operation_id: str,
    filters: HistoryFilter,
    *,
    after_seq: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of the operation's chain (JSON-ready rows), and the cursor of the next page.

    Each row says whether it was applied after its operation closed (``after_close``): in the
    chain, only a correction can be (docs/operations.md).
    """
    rows, next_seq = await repo.history_page(
        conn, operation_id, filters, after_seq=after_seq, limit=limit
    )
    closed_after = await repo.closure_offset(conn, operation_id)
    page = [repo.plain(r) for r in rows]
    for row in page:
        row["after_close"] = closed_after is not None and row["kafka_offset"] > closed_after
    return page, next_seq


async def late_events(conn: asyncpg.Connection, operation_id: str) -> list[dict[str, Any]]:
    """The events that reached the ledger after the operation closed: kept, never counted."""
    return [repo.plain(_row(r)) for r in await repo.late_events(conn, operation_id)]
