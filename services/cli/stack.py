"""`opsledger stack up | down | status | logs | env`: the local Kafka + PostgreSQL."""

from __future__ import annotations

import json
import shlex
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services import stack
from services.stack.procs import tail

stack_app = typer.Typer(
    help="The local stack: a real Kafka broker and PostgreSQL, no Docker needed.",
    no_args_is_help=True,
)
err = Console(stderr=True)


def _say(message: str) -> None:
    err.print(message, highlight=False, markup=False)


@stack_app.command()
def up(
    brokers: Annotated[
        int | None,
        typer.Option(
            "--brokers",
            min=1,
            max=9,
            help="Kafka nodes: 1 (the default) or a cluster, e.g. 3 (replication 3, "
            "min.insync.replicas 2). Kept until `stack down`.",
        ),
    ] = None,
) -> None:
    """Start Kafka and PostgreSQL (unless external), wait until all answer, migrate."""
    try:
        info = stack.ensure_up(say=_say, brokers=brokers)
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
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object: each part's name, pid, port, health.")
    ] = False,
) -> None:
    """Each part (each broker of a cluster), its pid, address and health; exit 0 only when all
    are healthy."""
    rows = stack.status()
    if as_json:
        healthy = all(row.healthy for row in rows)
        parts = [row.to_dict() for row in rows]
        typer.echo(json.dumps({"healthy": healthy, "parts": parts}, indent=2))
        if not healthy:
            raise typer.Exit(1)
        return
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
        str | None,
        typer.Argument(
            help="kafka (every broker), kafka-N (one node), postgres or issuer; default all"
        ),
    ] = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
) -> None:
    """Print the tail of the servers' logs."""
    s = stack.settings()
    logs_by_part = {name: stack.part_log(name, s) for name in stack.part_names(s)}
    wanted = [n for n in logs_by_part if part is None or n == part or n.startswith(f"{part}-")]
    if not wanted:
        err.print(f"no part {part!r}; parts: {', '.join(logs_by_part)}", highlight=False)
        raise typer.Exit(2)
    for name in wanted:
        path = logs_by_part[name]
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
    if stack.external_kafka(s) is None and s.kafka_nodes > 1:
        # The services create the topics they use: on a cluster, with three copies.
        typer.echo(f"export OPSLEDGER_TOPIC_REPLICATION={min(3, s.kafka_nodes)}")


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
