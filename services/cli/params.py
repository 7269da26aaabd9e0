"""Command-line values shared by several commands."""

from __future__ import annotations

from datetime import datetime

import typer


def instant(value: str, name: str) -> datetime:
    """An RFC 3339 timestamp with its UTC offset, or a usage error naming the option."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an RFC 3339 timestamp", param_hint=name
        ) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter("needs a UTC offset, e.g. 2026-11-23T09:00:00Z", param_hint=name)
    return parsed
