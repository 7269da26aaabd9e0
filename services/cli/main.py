"""The `opsledger` console script.

Each command group lives in its own module next to this one and exposes ``register(app)``; this
module imports and assembles them, so that the CLI stays a thin layer over the services' own code.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer

from services.cli import (
    demo,
    dlq,
    evidence,
    import_cmd,
    migrate,
    operation,
    schemas_cmd,
    serve,
    stack,
    summary,
    tlog,
    token,
    witness,
)
from services.common import access_log

app = typer.Typer(
    name="opsledger",
    help="An event-sourced operations ledger: record field events, watch the tally, prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    # Plain click help: flags without a misleading `<bool>` type column, no box drawing in pipes.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"opsledger {version('opsledger')}")
        raise typer.Exit()


@app.callback()
def _main(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=access_log.TOKEN_ENV,
            show_envvar=True,
            help="Bearer token of whoever runs a command that reads the ledger (verify, export, "
            "rebuild, summary): its subject is written to the access log.",
        ),
    ] = None,
) -> None:
    """An event-sourced operations ledger: record field events, watch the tally, prove it."""
    access_log.use_cli_token(token)


# Command groups, in the order `--help` lists them.
for _module in (
    stack,
    serve,
    token,
    demo,
    summary,
    evidence,
    operation,
    dlq,
    tlog,
    witness,
    migrate,
    schemas_cmd,
    import_cmd,
):
    _module.register(app)


if __name__ == "__main__":
    app()
