"""Query parameters of the totals-shaped reads, validated into a `TotalsQuery` (422 names each)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query

from services.common.problems import ProblemError
from services.query.repository import DIMENSIONS, TotalsQuery

# RFC 3339 date-time; Python alone refuses its lower-case t/z and more than 6 fraction digits.
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?$"
)
INSTANT_SCHEMA: dict[str, Any] = {"format": "date-time", "examples": ["2026-11-17T09:00:00Z"]}


def parse_instant(name: str, raw: str, errors: list[dict[str, Any]]) -> datetime | None:
    """An RFC 3339 instant with an offset (``Z`` allowed), in UTC; else an error naming ``name``."""
    match = _RFC3339.match(raw.strip())
    if match is None:
        errors.append(_error(name, f"{raw[:64]!r} is not an RFC 3339 timestamp"))
        return None
    day, clock, fraction, offset = match.groups()
    if offset is None:
        errors.append(_error(name, "needs a UTC offset, e.g. 2026-11-23T09:00:00Z"))
        return None
    micro = f".{fraction[:6]}" if fraction else ""
    text = f"{day}T{clock}{micro}{'+00:00' if offset in 'Zz' else offset}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        errors.append(_error(name, f"{raw[:64]!r} is not a valid instant"))
        return None


_DIMENSION = "(?:area|unit|day|item)"
GROUP_BY_PATTERN = f"^{_DIMENSION}(?:,{_DIMENSION})*$"


def _error(name: str, message: str) -> dict[str, Any]:
    return {"path": name, "in": "query", "message": message}


async def totals_query(
    operation_id: Annotated[str, Path(description="The operation's slug.")],
    group_by: Annotated[
        list[str] | None,
        Query(
            description="Break the totals down by area, unit, day (Europe/London) or item "
            "(substance of drug wraps, age band of arrests); repeat to combine.",
            json_schema_extra={"items": {"type": "string", "pattern": GROUP_BY_PATTERN}},
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        Query(
            description="Only what had happened by this instant (occurred_at).",
            json_schema_extra=INSTANT_SCHEMA,
        ),
    ] = None,
    known_at: Annotated[
        str | None,
        Query(
            description="Only what the ledger knew at this instant (recorded_at).",
            json_schema_extra=INSTANT_SCHEMA,
        ),
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
            if name not in DIMENSIONS:
                errors.append(
                    _error("group_by", f"unknown dimension {name!r}; use {', '.join(DIMENSIONS)}")
                )
            elif name not in groups:
                groups.append(name)
    as_of_t = None if as_of is None else parse_instant("as_of", as_of, errors)
    known_at_t = None if known_at is None else parse_instant("known_at", known_at, errors)
    raise_if_invalid(errors)
    return TotalsQuery(operation_id, tuple(groups), as_of_t, known_at_t)


def raise_if_invalid(errors: list[dict[str, Any]]) -> None:
    """422 problem naming every invalid parameter, when there is any."""
    if errors:
        raise ProblemError(
            422,
            "Invalid request",
            detail="; ".join(f"{e['path']}: {e['message']}" for e in errors),
            kind="invalid-request",
            errors=errors,
        )
