"""Query parameters of the totals-shaped reads, validated into a `TotalsQuery` (422 names each)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query

from services.common.problems import ProblemError
from services.query.repository import DIMENSIONS, TotalsQuery


def parse_instant(name: str, raw: str, errors: list[dict[str, Any]]) -> datetime | None:
    """An RFC 3339 instant with an offset (``Z`` allowed); records an error naming ``name``."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        errors.append(_error(name, f"{raw!r} is not an RFC 3339 timestamp"))
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        errors.append(_error(name, "needs a UTC offset, e.g. 2026-11-23T09:00:00Z"))
        return None
    return value


def _error(name: str, message: str) -> dict[str, Any]:
    return {"path": name, "in": "query", "message": message}


async def totals_query(
    operation_id: Annotated[str, Path(description="The operation's slug.")],
    group_by: Annotated[
        list[str] | None,
        Query(
            description="Break the totals down by area, unit, day (Europe/London) or item "
            "(substance of drug wraps, age band of arrests); repeat to combine."
        ),
    ] = None,
    as_of: Annotated[
        str | None, Query(description="Only what had happened by this instant (occurred_at).")
    ] = None,
    known_at: Annotated[
        str | None, Query(description="Only what the ledger knew at this instant (recorded_at).")
    ] = None,
) -> TotalsQuery:
    """Validate the parameters of a totals, summary or stream read (a FastAPI dependency)."""
    return parse_totals_query(operation_id, group_by, as_of, known_at)


def parse_totals_query(
    operation_id: str,
    group_by: list[str] | None = None,
    as_of: str | None = None,
    known_at: str | None = None,
) -> TotalsQuery:
    """The `TotalsQuery` these raw parameters ask for; ProblemError 422 naming each bad one."""
    errors: list[dict[str, Any]] = []
    groups: list[str] = []
    for raw in group_by or []:
        for name in raw.split(","):  # `group_by=area,day` is accepted as well as repetition
            name = name.strip()
            if name not in DIMENSIONS:
                errors.append(
                    _error("group_by", f"unknown dimension {name!r}; use {', '.join(DIMENSIONS)}")
                )
            elif name not in groups:
                groups.append(name)
    as_of_t = None if as_of is None else parse_instant("as_of", as_of, errors)
    known_at_t = None if known_at is None else parse_instant("known_at", known_at, errors)
    if errors:
        raise ProblemError(
            422,
            "Invalid request",
            detail="; ".join(f"{e['path']}: {e['message']}" for e in errors),
            kind="invalid-request",
            errors=errors,
        )
    return TotalsQuery(operation_id, tuple(groups), as_of_t, known_at_t)
