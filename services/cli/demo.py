"""`opsledger demo [--seed N]`: the reference week of action through the real pipeline."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer
from rich.console import Console

from services.demo.data import DEFAULT_SEED

err = Console(stderr=True)
out = Console()


def _say(message: str) -> None:
    err.print(message, highlight=False, markup=False)


def _database_role(service: str, database_url: str) -> dict[str, str]:
    """The aggregator and query connect as their own least-privilege roles, as deployed, when the
    database is the local stack's (which `stack up` gave those roles); ingest has none. The
    query service creates and closes operations as the registrar role."""
    from services import stack
    from services.stack.roles import role_url

    role = {"aggregator": "opsledger_aggregator", "query": "opsledger_query"}.get(service)
    registrar = stack.registrar_env(database_url)  # empty when the stack made no roles
    if role is None or not registrar:
        return {}
    env = {"OPSLEDGER_DATABASE_URL": role_url(database_url, role)}
    if service == "query":  # its admin routes create and close operations as the registrar
        env |= registrar
    return env


def demo(
    seed: Annotated[
        int, typer.Option(help="Seed of the generated week (same seed, same events).")
    ] = DEFAULT_SEED,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the totals.")] = 60.0,
) -> None:
    """Bring up the stack and services, send the week of action over HTTP, print the tally."""
    # Imported here so that `opsledger --help` stays fast.
    from services import stack
    from services.aggregator.settings import AggregatorSettings
    from services.demo.run import DemoError, play, progress_bar
    from services.demo.services import Service, Services
    from services.ingest.settings import IngestSettings
    from services.query.settings import QuerySettings
    from services.stack.settings import repo_root

    try:
        info = stack.ensure_up(say=_say)
    except stack.StackError as exc:
        err.print(f"[bold red]the local stack is not ready:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    # The services the demo starts, and its own reads, must use the stack that just answered
    # (its ports may be overridden with OPSLEDGER_STACK_*), not the settings' defaults.
    os.environ.update(info.env())
    ingest_s, query_s, agg_s = IngestSettings(), QuerySettings(), AggregatorSettings()
    ingest = Service("ingest", ingest_s.host, ingest_s.port)
    query = Service("query", query_s.host, query_s.port)
    aggregator = Service("aggregator", agg_s.host, agg_s.port)
    running = Services(repo_root() / ".local" / "demo")
    try:
        for service in (aggregator, ingest, query):
            env = _database_role(service.name, info.database_url)
            if env:
                user = env["OPSLEDGER_DATABASE_URL"].partition("://")[2].partition("@")[0]
                _say(f"{service.name}: connects to PostgreSQL as {user}")
            running.ensure(service, _say, env=env)
        with progress_bar() as progress:
            outcome = asyncio.run(play(seed, ingest.url, query.url, _demo_token, progress, timeout))
    except (DemoError, RuntimeError) as exc:
        err.print(f"[bold red]demo failed:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        running.stop_all(_say)
    week = outcome.week
    out.print(
        f"\n[bold]Week of action[/] {week.operation_id}: {week.event_count} events sent over "
        f"{len(week.sends)} requests ({week.duplicates} resent by flaky devices, "
        f"{week.voids} mistakes voided and re-entered), tally in {outcome.seconds:.1f} s\n",
        highlight=False,
    )
    out.print(outcome.summary(), highlight=False, markup=False)
    err.print(
        f"\nKafka ({info.kafka_bootstrap}) and PostgreSQL stay up for a closer look: "
        f"`OPSLEDGER_TOKEN=$(opsledger token --role supervisor --operation "
        f"{week.operation_id}) opsledger summary --operation {week.operation_id}`, "
        "the dashboard via `opsledger serve query`; `opsledger stack down` stops them.",
        highlight=False,
        markup=False,
    )
    if not outcome.exact:
        err.print("[bold red]the totals do not match the reference tally[/]")
        raise typer.Exit(1)


def _demo_token(role: str, operations: list[str]) -> str:
    from services.stack.devissuer.tokens import dev_token

    return dev_token(role, operations, subject="demo")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
