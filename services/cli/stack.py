"""`opsledger stack up | down | status | logs | env`: the local Kafka + PostgreSQL."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from services import stack
from services.stack.procs import tail
from services.stack.settings import StackSettings

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
    # Query started from this env lets admins create and close operations (else 503).
    for name, value in stack.registrar_env(database, s).items():
        typer.echo(f"export {name}={shlex.quote(value)}")
    if stack.external_kafka(s) is None and s.kafka_nodes > 1:
        # The services create the topics they use: on a cluster, with three copies.
        typer.echo(f"export OPSLEDGER_TOPIC_REPLICATION={min(3, s.kafka_nodes)}")


@stack_app.command()
def certs(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Directory to write into (default: the secure stack's, .local/secure/certs); "
            "for compose: deploy/compose/secrets.",
        ),
    ] = None,
    for_containers: Annotated[
        bool,
        typer.Option(
            "--for-containers",
            help="Compose: let the Kafka container's account read the brokers' keystore "
            "(the directory stays private to you).",
        ),
    ] = False,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="A name the certificates must be valid for (repeatable)."),
    ] = None,
) -> None:
    """Generate a CA, the brokers', PostgreSQL's and the issuer's certificates, and a password
    for every Kafka SCRAM user and database role (secrets.env); keeps what already exists."""
    from services.stack import certs as certs_module
    from services.stack.secure import SecureStack

    directory = out or SecureStack(_secure_settings()).cert_dir
    hosts = [*certs_module.DEFAULT_HOSTS, *(host or [])]
    material = certs_module.generate(directory, hosts, for_containers=for_containers)
    _say(f"certificates and passwords in {material.dir} (CA: {material.ca}; never commit it)")


secure_app = typer.Typer(
    help="The stack as compose ships it: Kafka SASL_SSL (SCRAM), PostgreSQL TLS only, the "
    "development issuer over https; in .local/secure, on the stack's ports.",
    no_args_is_help=True,
)
stack_app.add_typer(secure_app, name="secure")


def _secure_settings() -> StackSettings:
    s = stack.settings()
    return s.model_copy(update={"dir": s.dir / "secure"})


@secure_app.command("up")
def secure_up() -> None:
    """Generate certificates and passwords (once), start the secure parts, migrate, grant."""
    from services.stack.secure import SecureStack

    try:
        SecureStack(_secure_settings()).up(_say)
    except stack.StackError as exc:
        err.print(f"[bold red]secure stack up failed:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    err.print("[green]secure stack ready[/]: `opsledger stack secure env SERVICE`", highlight=False)


@secure_app.command("down")
def secure_down() -> None:
    """Stop the secure stack's processes."""
    from services.stack.secure import SecureStack

    if not SecureStack(_secure_settings()).down(_say):
        _say("nothing was running")


@secure_app.command("env")
def secure_env(
    service: Annotated[str, typer.Argument(help="ingest, aggregator, query or admin")],
) -> None:
    """Print `export` lines with which SERVICE connects to the secure stack (production mode)."""
    from services.stack.secure import SecureStack

    info = SecureStack(_secure_settings()).info()
    if service == "admin":  # operators' tools: the SCRAM admin and the database superuser
        values = {
            **info.kafka_env("opsledger-admin"),
            "OPSLEDGER_DATABASE_URL": info.database_url(info.settings.pg_user),
        }
    elif service in ("ingest", "aggregator", "query"):
        values = info.service_env(service)
    else:
        err.print(f"no service {service!r} (ingest, aggregator, query, admin)", highlight=False)
        raise typer.Exit(2)
    for name, value in values.items():
        typer.echo(f"export {name}={shlex.quote(value)}")


issuer_app = typer.Typer(
    help="The development token issuer of the local stack (never used in production).",
    no_args_is_help=True,
)


@issuer_app.command("rotate")
def issuer_rotate(
    overlap: Annotated[
        float,
        typer.Option(
            "--overlap",
            min=0,
            help="Seconds the old key stays published, so that tokens it signed keep verifying "
            "(default one day: the longest a development token lives).",
        ),
    ] = 86_400.0,
) -> None:
    """Make a new key the signing key; keep the old one in the JWKS for --overlap seconds.

    The services pick the new key up without a restart (an unknown `kid` makes them re-read the
    JWKS), and drop the old one at their next key refresh after the overlap.
    """
    import os

    from services.stack.devissuer.keys import rotate

    if os.environ.get("OPSLEDGER_ENV", "").lower() == "production":
        err.print("refusing: OPSLEDGER_ENV=production has no development issuer", highlight=False)
        raise typer.Exit(1)
    directory = stack.settings().issuer_dir
    try:
        old, new = rotate(directory, overlap)
    except FileNotFoundError:
        err.print(f"no development key in {directory}; run `opsledger stack up` first")
        raise typer.Exit(1) from None
    _say(f"issuer: signing with {new}; {old} stays published for {overlap:.0f} s")


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
    app.add_typer(issuer_app, name="issuer")
