"""`opsledger summary`: the press-release bullet list of an operation, read from PostgreSQL.

Signed in like any client (``--token`` / ``$OPSLEDGER_TOKEN``): a supervisor's token must cover
the operation; the read is logged by the access log's one rule (auditor and admin reads are).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import orjson
import typer

from services.common import access_log
from services.common.access import covers
from services.common.auth import Principal, Role
from services.common.db import connect
from services.common.problems import ProblemError
from services.query import repository
from services.query.operation_facts import header, read_facts
from services.query.params import parse_totals_query
from services.query.reads import query_params
from services.query.repository import TotalsQuery
from services.query.settings import QuerySettings
from services.query.summary import (
    details_from_groups,
    format_summary,
    provenance,
    summary_document,
)
from services.tlog import checkpoints, tree

READ_ROLES: tuple[Role, ...] = ("supervisor", "auditor", "admin")


async def _summary(dsn: str, q: TotalsQuery, principal: Principal, as_json: bool) -> str | None:
    conn = await connect(dsn, timeout=10)
    try:
        await access_log.record(conn, principal, "summary", q.operation_id, query_params(q))
        result = await repository.read_totals(conn, q)
        stored = await checkpoints.latest(conn, q.operation_id)
        events = await tree.size(conn, q.operation_id)
        facts = await read_facts(conn, q.operation_id)
    finally:
        await conn.close()
    if result is None:
        return None
    details = details_from_groups(result.groups)
    if as_json:
        cp = None if stored is None else stored.to_dict()
        doc = summary_document(q.operation_id, result.metrics, details, cp, events, facts.to_dict())
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    text = header(facts) + format_summary(result.metrics, details)
    if stored is not None:
        text += provenance(q.operation_id, stored.note, stored.size, events, result.metrics)
    return text


def summary(
    operation: Annotated[str, typer.Option("--operation", help="The operation's id.")],
    as_of: Annotated[
        str | None,
        typer.Option(help="Only what had happened by this RFC 3339 instant (occurred_at)."),
    ] = None,
    known_at: Annotated[
        str | None,
        typer.Option(help="Only what the ledger knew at this RFC 3339 instant (recorded_at)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The JSON document (figures, checkpoint, proofs).")
    ] = False,
) -> None:
    """Print the operation's tally as the press-release bullet list (Markdown).

    When the ledger has signed a checkpoint of the operation, the list ends with it and with
    how to obtain the inclusion proofs behind each figure.
    """
    try:
        q = parse_totals_query(operation, ["item"], as_of, known_at)
    except ProblemError as exc:
        for error in exc.errors or []:
            typer.echo(f"--{error['path'].replace('_', '-')}: {error['message']}", err=True)
        raise typer.Exit(2) from exc
    try:
        principal = access_log.cli_principal(READ_ROLES)
    except access_log.CliAuthError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if not covers(principal, operation):
        typer.echo(f"this token is not scoped to operation {operation!r}", err=True)
        raise typer.Exit(2)
    settings = QuerySettings()
    try:
        text = asyncio.run(_summary(settings.database_url, q, principal, as_json))
    except OSError as exc:
        typer.echo(f"cannot reach PostgreSQL at {settings.database_url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if text is None:
        where = settings.database_url.rpartition("@")[2]
        typer.echo(
            f"unknown operation {operation!r}: no event of it has been applied"
            f' (database {where}; `eval "$(opsledger stack env)"` points at the local stack)',
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.command("summary")(summary)
