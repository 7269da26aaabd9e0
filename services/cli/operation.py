"""`opsledger operation create | show | close | list`: operations as records.

Signed in like any client (``--token`` / ``$OPSLEDGER_TOKEN``): an admin creates and closes; a
supervisor reads the operations its token covers; auditors and admins read every operation.
Each change is published on the compacted operations topic (what ingest learns status from)
and written into ``ledger.operations`` (what queries read).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import asyncpg
import orjson
import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from services.cli.params import instant
from services.common import access_log
from services.common import operations as ops
from services.common.access import covers
from services.common.auth import Principal, Role
from services.common.db import connect
from services.common.settings import CommonSettings
from services.common.topics import TopicError
from services.ledger import lifecycle
from services.tlog.keys import ledger_signer
from services.tlog.settings import TlogSettings

T = TypeVar("T")
ADMIN: tuple[Role, ...] = ("admin",)
READERS: tuple[Role, ...] = ("supervisor", "auditor", "admin")

app = typer.Typer(help="Operations as records: create, show, close, list.", no_args_is_help=True)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _principal(roles: tuple[Role, ...]) -> Principal:
    try:
        return access_log.cli_principal(roles)
    except access_log.CliAuthError as exc:
        raise _fail(str(exc), 2) from exc


def _run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    try:
        return asyncio.run(main())
    except asyncpg.UndefinedTableError as exc:
        raise _fail(f"the database is not migrated ({exc}): run `opsledger migrate`", 3) from exc
    except (OSError, asyncpg.PostgresConnectionError, KafkaError, TopicError, TimeoutError) as exc:
        raise _fail(f"cannot reach PostgreSQL or Kafka: {exc!r}", 3) from exc
    except ops.OperationError as exc:
        raise _fail(str(exc), 1) from exc


def _print(doc: object) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


async def _create(settings: CommonSettings, record: ops.OperationRecord) -> None:
    conn = await connect(settings.database_url, timeout=10)
    try:
        await lifecycle.create(conn, settings, record)
    finally:
        await conn.close()


async def _close(settings: CommonSettings, operation_id: str, by: str) -> ops.OperationRecord:
    conn = await connect(settings.database_url, timeout=10)
    try:
        signer = ledger_signer(TlogSettings())
        return await lifecycle.close(conn, settings, signer, operation_id, by)
    finally:
        await conn.close()


async def _read(
    settings: CommonSettings, principal: Principal, operation_id: str | None
) -> list[ops.OperationRecord]:
    conn = await connect(settings.database_url, timeout=10)
    try:
        # The access log's one rule, as over HTTP: auditor and admin reads are logged.
        await access_log.record(conn, principal, "operations", operation_id, {})
        if operation_id is None:
            return await ops.list_all(conn)
        record = await ops.get(conn, operation_id)
        return [] if record is None else [record]
    finally:
        await conn.close()


def _doc(record: ops.OperationRecord) -> dict[str, object]:
    return record.current(datetime.now(UTC)).model_dump(mode="json")


@app.command("create")
def create(
    operation: Annotated[str, typer.Option("--operation", help="The operation's id (slug).")],
    title: Annotated[str, typer.Option(help="What the operation is called.")],
    start: Annotated[str, typer.Option(help="Planned start, RFC 3339.")],
    end: Annotated[str, typer.Option(help="Planned end, RFC 3339.")],
    area: Annotated[
        list[str] | None, typer.Option("--area", help="A force or area (repeatable).")
    ] = None,
) -> None:
    """Create an operation (admin): planned, or active once its planned start has passed."""
    principal = _principal(ADMIN)
    try:
        record = ops.new_record(
            operation, title, area or [], instant(start, "--start"), instant(end, "--end"),
            by=principal.subject,
        )  # fmt: skip
    except ValidationError as exc:
        raise _fail(f"invalid operation: {exc.errors()[0]['msg']}", 2) from exc
    _run(_create(CommonSettings(), record))
    _print(_doc(record))


@app.command("close")
def close(
    operation: Annotated[str, typer.Option("--operation", help="The operation's id.")],
) -> None:
    """Close an operation (admin): its tally is frozen from now on."""
    principal = _principal(ADMIN)
    _print(_doc(_run(_close(CommonSettings(), operation, principal.subject))))


@app.command("show")
def show(
    operation: Annotated[str, typer.Option("--operation", help="The operation's id.")],
) -> None:
    """Print one operation's record (JSON); exit 1 when it was never created."""
    principal = _principal(READERS)
    if not covers(principal, operation):
        raise _fail(f"this token is not scoped to operation {operation!r}", 2)
    found = _run(_read(CommonSettings(), principal, operation))
    if not found:
        raise _fail(f"operation {operation!r} has no record (never created)", 1)
    _print(_doc(found[0]))


@app.command("list")
def list_cmd() -> None:
    """Print the operations the token may read (JSON array), by planned start."""
    principal = _principal(READERS)
    records = _run(_read(CommonSettings(), principal, None))
    _print([_doc(r) for r in records if covers(principal, r.operation_id)])


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="operation")
