"""`opsledger serve ingest|aggregator|query`: one service in the foreground."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

serve_app = typer.Typer(help="Run one service in the foreground.", no_args_is_help=True)

HostOpt = Annotated[str | None, typer.Option(help="Interface to bind (default from settings).")]
PortOpt = Annotated[int | None, typer.Option(help="Port to bind (default from settings).")]


def _run(module: str, host: str | None, port: int | None) -> None:
    # Imported here so that `opsledger --help` stays fast and one service's imports never
    # slow another's start.
    importlib.import_module(module).run(host=host, port=port)


@serve_app.command("ingest")
def ingest(host: HostOpt = None, port: PortOpt = None) -> None:
    """HTTP ingest: validate field events and produce them to Kafka (default port 8080)."""
    _run("services.ingest.main", host, port)


@serve_app.command("aggregator")
def aggregator(host: HostOpt = None, port: PortOpt = None) -> None:
    """The faust aggregator: the log into PostgreSQL, exactly once (health port 8082)."""
    _run("services.aggregator.main", host, port)


@serve_app.command("query")
def query(host: HostOpt = None, port: PortOpt = None) -> None:
    """HTTP read side: totals, history, verification, live stream, dashboard (port 8081)."""
    _run("services.query.main", host, port)


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve")
