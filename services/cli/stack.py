"""`opsledger stack up | down | status | logs | env`: the local Kafka + PostgreSQL."""

from __future__ import annotations

import shlex
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services import stack
from services.stack.issuer import IssuerPart
from services.stack.kafka import KafkaPart
from services.stack.postgres import PostgresPart
from services.stack.procs import tail

stack_app = typer.Typer(
    help="The local stack: a real Kafka broker and PostgreSQL, no Docker needed.",
    no_args_is_help=True,
)
err = Console(stderr=True)


class LogPart(StrEnum):
    kafka = "kafka"
    postgres = "postgres"
    issuer = "issuer"


def _say(message: str) -> None:
    err.print(message, highlight=False, markup=False)


@stack_app.command()
def up() -> None:
    """Start Kafka and PostgreSQL (unless external), wait until both answer, migrate."""
    try:
        info = stack.ensure_up(say=_say)
    except stack.StackError as exc:
        err.print(f"[bold red]stack up failed:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    started = ", ".join(sorted(info.started)) or "nothing (already running)"
    err.print(f"[green]stack ready[/]: started {started}", highlight=False)
    err.print(f"  KAFKA_BOOTSTRAP_SERVERS={info.kafka_bootstrap}", highlight=False)
    err.print(f"  DATABASE_URL={info.database_url}", highlight=False)
    err.print(f"  OPSLEDGER_OIDC_ISSUER={info.issuer}", highlight=False)


@stack_app.command()
def down() -> None:
    """Stop exactly the processes `up` started (from their pid files)."""
    try:
        stopped = stack.down(say=_say)
    except stack.StackError as exc:
        err.print(f"[bold red]stack down failed:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if not stopped:
        _say("nothing was running")


@stack_app.command()
def status() -> None:
    """Each part, its pid, address and health; exit 0 only when all are healthy."""
    rows = stack.status()
    table = Table(title="opsledger local stack")
    for column in ("part", "pid", "address", "healthy", "detail"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.part + (" (external)" if row.external else ""),
            str(row.pid) if row.pid is not None else "-",
            row.address,
            "[green]yes[/]" if row.healthy else "[red]no[/]",
            row.detail,
        )
    Console().print(table)
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


@stack_app.command()
def logs(
    part: Annotated[
        LogPart | None, typer.Argument(help="kafka, postgres or issuer (default all)")
    ] = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
) -> None:
    """Print the tail of the servers' logs."""
    s = stack.settings()
    logs_by_part = {
        "kafka": KafkaPart(s).log,
        "postgres": PostgresPart(s).log,
        "issuer": IssuerPart(s).log,
    }
    for name, path in logs_by_part.items():
        if part is not None and part.value != name:
            continue
        typer.echo(f"==> {path} <==")
        typer.echo(tail(path, lines) or "(empty)")


@stack_app.command()
def env() -> None:
    """Print `export` lines for the stack's addresses: eval "$(opsledger stack env)"."""
    s = stack.settings()
    kafka = stack.external_kafka(s) or s.kafka_bootstrap
    database = stack.external_database(s) or s.database_url
    typer.echo(f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(kafka)}")
    typer.echo(f"export DATABASE_URL={shlex.quote(database)}")
    issuer = stack.external_issuer(s) or s.issuer_url
    typer.echo(f"export OPSLEDGER_OIDC_ISSUER={shlex.quote(issuer)}")


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
