"""Auditor routes: event history, verification, evidence export and the access log.

Every call is itself recorded in audit.access_log before it reads anything; an export is recorded
once its bundle is built (the row carries the bundle's SHA-256) and before it is sent.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from services.audit.service import (
    HistoryFilter,
    UnknownOperation,
    View,
    disclosure,
    export_operation,
    history_page,
    late_events,
    verify_operation,
)
from services.common import access_log
from services.common.problems import ProblemError
from services.query.deps import Auditor, Pool
from services.query.jsonresp import json_response
from services.query.openapi import AUDIT_ERRORS, body, problem
from services.query.params import INSTANT_SCHEMA, parse_instant, raise_if_invalid

BIGINT_MAX = 2**63 - 1  # cursors are PostgreSQL bigints
router = APIRouter(tags=["audit"])
MAX_PAGE = 1000


def _attachment(operation_id: str) -> str:
    """Content-Disposition of a bundle. The id is raw path text from the client: only an ASCII
    slug form goes into the header (a quote, CR/LF or non-Latin-1 character would forge a
    parameter, split the header, or fail encoding with a 500)."""
    name = re.sub(r"[^a-z0-9-]", "_", operation_id)[:64] or "operation"
    return f'attachment; filename="{name}-evidence.tar"'


def _instants(**raw: str | None) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    out = {k: None if v is None else parse_instant(k, v, errors) for k, v in raw.items()}
    raise_if_invalid(errors)
    return out


def _json(description: str) -> dict[int | str, dict[str, Any]]:
    return {200: body("application/json", description, {"type": "object"}), **AUDIT_ERRORS}


def _instant(description: str, alias: str | None = None) -> Any:
    """A query parameter documented as an RFC 3339 instant (parsed by the handler: 422 names it)."""
    return Query(alias=alias, description=description, json_schema_extra=INSTANT_SCHEMA)


@router.get("/v1/operations/{operation_id}/events", responses=_json("A page of events"))
async def history(
    operation_id: str,
    pool: Pool,
    principal: Auditor,
    after_seq: Annotated[
        int, Query(ge=0, le=BIGINT_MAX, description="Cursor: return events after this seq.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
    type: Annotated[str | None, Query(description="Only this event type.")] = None,
    area: Annotated[str | None, Query(description="Only this area.")] = None,
    unit: Annotated[str | None, Query(description="Only this unit.")] = None,
    officer: Annotated[str | None, Query(description="Only this officer_id.")] = None,
    occurred_from: Annotated[
        str | None, _instant("occurred_at at or after (RFC 3339).", "from")
    ] = None,
    occurred_to: Annotated[
        str | None, _instant("occurred_at at or before (RFC 3339).", "to")
    ] = None,
) -> Response:
    """The operation's events in chain order, with hashes, Kafka position and void status."""
    times = _instants(**{"from": occurred_from, "to": occurred_to})
    filters = HistoryFilter(type, area, unit, officer, times["from"], times["to"])
    params = {
        "after_seq": after_seq,
        "limit": limit,
        "type": type,
        "area": area,
        "unit": unit,
        "officer": officer,
        "from": occurred_from,
        "to": occurred_to,
    }
    await access_log.record(
        pool, principal, "history", operation_id, {k: v for k, v in params.items() if v is not None}
    )
    async with pool.acquire() as conn:
        rows, next_seq = await history_page(
            conn, operation_id, filters, after_seq=after_seq, limit=limit
        )
    return json_response(
        {
            "operation_id": operation_id,
            "events": rows,
            "next_after_seq": next_seq,
            "limit": limit,
        }
    )


@router.get(
    "/v1/operations/{operation_id}/late-events",
    responses=_json("Events that reached the ledger after the operation closed"),
)
async def late(operation_id: str, pool: Pool, principal: Auditor) -> Response:
    """Events recorded late (after the close): stored for the auditor, never counted."""
    await access_log.record(pool, principal, "late-events", operation_id, {})
    async with pool.acquire() as conn:
        rows = await late_events(conn, operation_id)
    return json_response({"operation_id": operation_id, "events": rows})


@router.get("/v1/operations/{operation_id}/verify", responses=_json("The verification report"))
async def verify(operation_id: str, pool: Pool, principal: Auditor) -> Response:
    """Recompute the hash chain and the totals from events; ``ok`` only when both are intact."""
    await access_log.record(pool, principal, "verify", operation_id, {})
    async with pool.acquire() as conn:
        report = await verify_operation(conn, operation_id)
    return json_response(report.to_dict())


@router.get(
    "/v1/operations/{operation_id}/export",
    response_class=Response,
    responses={
        200: body("application/x-tar", "The evidence bundle", {"type": "string"}),
        **AUDIT_ERRORS,
        404: problem("No event of this operation is in the ledger."),
    },
)
async def export(
    operation_id: str,
    pool: Pool,
    principal: Auditor,
    format: Annotated[Literal["jsonl", "csv"], Query(description="Events file format.")] = "jsonl",
    as_of: Annotated[str | None, _instant("Totals as of (occurred_at).")] = None,
    known_at: Annotated[str | None, _instant("Totals as known at (recorded_at).")] = None,
) -> Response:
    """The evidence bundle (tar of manifest.json and the events file), see docs/audit.md."""
    times = _instants(as_of=as_of, known_at=known_at)
    params = {"format": format, "as_of": as_of, "known_at": known_at}
    with tempfile.TemporaryDirectory(prefix="opsledger-export-") as tmp:
        path = FsPath(tmp) / f"{operation_id}.tar"
        async with pool.acquire() as conn:
            try:
                manifest = await export_operation(
                    conn,
                    operation_id,
                    path,
                    fmt=format,
                    view=View(as_of=times["as_of"], known_at=times["known_at"]),
                    created_by=principal.subject,
                )
            except UnknownOperation as exc:  # consulted all the same: logged, nothing disclosed
                await access_log.record(
                    conn, principal, "export", operation_id, {k: v for k, v in params.items() if v}
                )
                raise ProblemError(
                    404, "Unknown operation", detail=str(exc), kind="unknown-operation"
                ) from exc
            data = path.read_bytes()
            # The disclosure is logged before a byte of the bundle leaves.
            await access_log.record(
                conn, principal, "export", operation_id, disclosure(manifest, data)
            )
    return Response(
        data,
        media_type="application/x-tar",
        headers={"Content-Disposition": _attachment(operation_id)},
    )


@router.get("/v1/audit/access-log", responses=_json("A page of access-log entries"))
async def access_log_list(
    pool: Pool,
    principal: Auditor,
    operation: Annotated[str | None, Query(description="Only this operation.")] = None,
    action: Annotated[str | None, Query(description="Only this action.")] = None,
    who: Annotated[str | None, Query(alias="principal", description="Only this principal.")] = None,
    since: Annotated[str | None, _instant("Only entries at or after (RFC 3339).")] = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAX, description="Cursor: entries older than this id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
) -> Response:
    """Who read what and when, newest first (this listing is itself logged)."""
    times = _instants(since=since)
    params = {"operation": operation, "action": action, "principal": who, "since": since}
    await access_log.record(
        pool, principal, "access_log", None, {k: v for k, v in params.items() if v}
    )
    entries, next_id = await access_log.entries(
        pool,
        operation_id=operation,
        action=action,
        principal=who,
        since=times["since"],
        before_id=before_id,
        limit=limit,
    )
    return json_response({"entries": entries, "next_before_id": next_id, "limit": limit})
