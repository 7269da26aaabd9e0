"""`opsledger token`: a development token, signed with the local development issuer's key.

For laptops and CI only: it refuses to run when ``OPSLEDGER_ENV=production``, and when the
services are configured to trust another issuer (a real identity provider signs those tokens).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from services.common.auth import ROLES
from services.stack.devissuer.keys import MAX_TTL_S, claims_for, load


def token(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    operation: Annotated[
        list[str] | None,
        typer.Option("--operation", help="Operation id the token may use (repeatable)."),
    ] = None,
    ttl: Annotated[
        int, typer.Option(help=f"Lifetime in seconds (at most {MAX_TTL_S}).", min=1)
    ] = 3600,
    subject: Annotated[str | None, typer.Option(help="The `sub` claim (officer id).")] = None,
) -> None:
    """Print a development token for ROLE, scoped to the given operations."""
    # Imported here so that `opsledger --help` stays fast.
    from services.common.issuer_settings import IssuerSettings
    from services.stack.settings import StackSettings

    if os.environ.get("OPSLEDGER_ENV", "").lower() == "production":
        raise typer.BadParameter(
            "refusing to mint a development token with OPSLEDGER_ENV=production; "
            "sign in through the identity provider instead",
            param_hint="OPSLEDGER_ENV",
        )
    if role not in ROLES:
        raise typer.BadParameter(f"expected one of {', '.join(ROLES)}", param_hint="--role")
    stack = StackSettings()
    settings = IssuerSettings()
    if settings.oidc_issuer and settings.oidc_issuer != stack.issuer_url:
        raise typer.BadParameter(
            f"OPSLEDGER_OIDC_ISSUER is {settings.oidc_issuer}, not the development issuer "
            f"({stack.issuer_url}); get a token from that identity provider",
            param_hint="OPSLEDGER_OIDC_ISSUER",
        )
    try:
        key = load(stack.issuer_dir)
    except FileNotFoundError:
        raise typer.BadParameter(
            f"no development key in {stack.issuer_dir}; run `opsledger stack up` first",
            param_hint="--role",
        ) from None
    try:
        claims = claims_for(
            issuer=stack.issuer_url,
            audience=settings.oidc_audience,
            role=role,
            operations=operation or [],
            subject=subject,
            ttl_s=ttl,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(key.sign(claims))


def register(app: typer.Typer) -> None:
    app.command("token")(token)
