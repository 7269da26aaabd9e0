"""`opsledger token`: development JWTs signed with the configured key."""

from __future__ import annotations

from typing import Annotated, cast

import typer

from services.common.auth import ROLES, Role, issue_token
from services.common.settings import CommonSettings


def token(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    operation: Annotated[
        list[str] | None,
        typer.Option("--operation", help="Operation id the token may use (repeatable)."),
    ] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.", min=1)] = 3600,
    subject: Annotated[str | None, typer.Option(help="The `sub` claim (officer id).")] = None,
) -> None:
    """Print a development token for ROLE, scoped to the given operations."""
    if role not in ROLES:
        raise typer.BadParameter(f"expected one of {', '.join(ROLES)}", param_hint="--role")
    settings = CommonSettings()
    try:
        value = issue_token(
            settings,
            role=cast(Role, role),
            operations=operation or [],
            subject=subject,
            ttl_s=ttl,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(value)


def register(app: typer.Typer) -> None:
    app.command("token")(token)
