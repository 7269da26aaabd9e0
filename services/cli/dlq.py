"""`opsledger dlq list | show | replay | discard`: work the dead letters (auditor / admin).

Every use is written to the access log (``audit.access_log``, action ``dlq_<command>``) under
the identity of the command's token (``--token`` or ``$OPSLEDGER_TOKEN``, role auditor or admin).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any

import asyncpg
import orjson
import typer
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from services.aggregator import dlq
from services.common import access_log
from services.common.kafka import client_kwargs
from services.common.settings import CommonSettings
from services.ledger import dead_letters
from services.ledger.dead_letters import DeadLetter

SEND_TIMEOUT_S = 30.0
console = Console(stderr=True)
out = Console()

app = typer.Typer(
    help="Dead letters: records the ledger could not apply (undecodable, against the contract,"
    " refused by the database), with the reason and source position of each.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Position = Annotated[
    str, typer.Argument(help="Source position PARTITION:OFFSET, as `dlq list` prints it.")
]
Topic = Annotated[
    str | None, typer.Option("--topic", help="Source topic (default: the configured log).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _signed_in() -> Any:
    """Who runs this command, from its token (auditor or admin); exit 2 without a valid one."""
    try:
        return access_log.cli_principal()
    except access_log.CliAuthError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


def _position(text: str) -> tuple[int, int]:
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise typer.BadParameter(f"{text!r} is not PARTITION:OFFSET, e.g. 3:1042")
    return int(partition), int(offset)


def _doc(letter: DeadLetter, *, with_value: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "topic": letter.topic,
        "position": letter.position,
        "status": letter.status,
        "reason": letter.reason,
        "dead_at": letter.dead_at,
        "bytes": len(letter.value or b""),
        "resolved_at": letter.resolved_at,
        "resolved_by": letter.resolved_by,
        "note": letter.note,
        "replayed_to": None
        if letter.replay_partition is None
        else f"{letter.replay_partition}:{letter.replay_offset}",
    }
    if with_value:
        doc["value"] = (letter.value or b"").decode("utf-8", "backslashreplace")
    return doc


def _print_json(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


async def _with_conn(settings: CommonSettings, work: Any) -> Any:
    conn = await asyncpg.connect(settings.database_url, timeout=10)
    try:
        return await work(conn)
    finally:
        await conn.close()


def _run(work: Any) -> Any:
    settings = CommonSettings()
    try:
        return asyncio.run(_with_conn(settings, work))
    except asyncpg.UndefinedTableError as exc:
        console.print(f"[red]the database is not migrated ({exc}): run `opsledger migrate`[/]")
    except (OSError, asyncpg.PostgresConnectionError, TimeoutError) as exc:
        console.print(f"[red]cannot reach PostgreSQL or Kafka: {exc}[/]")
    except LookupError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    raise typer.Exit(3)


@app.command("list")
def list_cmd(
    topic: Topic = None,
    every: Annotated[
        bool, typer.Option("--all", help="Also replayed and discarded ones (default: open only).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 100,
    as_json: AsJson = False,
) -> None:
    """List dead letters (open ones by default), in log order."""
    name = topic or CommonSettings().topic

    async def work(conn: asyncpg.Connection) -> list[DeadLetter]:
        await access_log.record(conn, _signed_in(), "dlq_list", None, {"topic": name, "all": every})
        status = None if every else dead_letters.OPEN
        return await dead_letters.listing(conn, name, status=status, limit=limit)

    letters: list[DeadLetter] = _run(work)
    if as_json:
        _print_json([_doc(x) for x in letters])
        return
    table = Table(title=f"dead letters of {name}")
    for column in ("position", "status", "dead at", "bytes", "reason"):
        table.add_column(column)
    for x in letters:
        table.add_row(
            x.position, x.status, f"{x.dead_at:%Y-%m-%d %H:%M:%S}", str(len(x.value or b"")),
            x.reason[:120],
        )  # fmt: skip
    out.print(table)


@app.command("show")
def show_cmd(position: Position, topic: Topic = None, as_json: AsJson = False) -> None:
    """One dead letter in full: reason, status, and the record's bytes."""
    name = topic or CommonSettings().topic
    partition, offset = _position(position)

    async def work(conn: asyncpg.Connection) -> DeadLetter:
        await access_log.record(
            conn, _signed_in(), "dlq_show", None,
            {"topic": name, "position": position},
        )  # fmt: skip
        letter = await dead_letters.get(conn, name, partition, offset)
        if letter is None:
            raise LookupError(f"no dead letter at {name} {position}")
        return letter

    letter: DeadLetter = _run(work)
    doc = _doc(letter, with_value=True)
    if as_json:
        _print_json(doc)
        return
    for key, value in doc.items():
        out.print(f"{key:>12}: {value}", markup=False, highlight=False)


@app.command("replay")
def replay_cmd(position: Position, topic: Topic = None, as_json: AsJson = False) -> None:
    """Send a dead letter back through the ledger (after the fix); applied exactly once.

    The record is re-published to its topic with an `opsledger-replay-of` header and the dead
    letter is marked replayed with its new position; running replay again changes nothing.
    """
    settings = CommonSettings()
    name = topic or settings.topic
    partition, offset = _position(position)
    principal = _signed_in()

    async def work(conn: asyncpg.Connection) -> tuple[DeadLetter, bool]:
        await access_log.record(
            conn, principal, "dlq_replay", None, {"topic": name, "position": position}
        )
        producer = AIOKafkaProducer(
            **client_kwargs(settings), acks="all", enable_idempotence=True,
            max_request_size=8 << 20,
        )  # fmt: skip
        await asyncio.wait_for(producer.start(), SEND_TIMEOUT_S)
        try:

            async def send(t: str, key: Any, value: Any, headers: Any) -> object:
                return await asyncio.wait_for(
                    producer.send_and_wait(t, value, key=key, headers=headers), SEND_TIMEOUT_S
                )

            return await dlq.replay(conn, send, name, partition, offset, principal.subject)
        finally:
            await asyncio.wait_for(producer.stop(), SEND_TIMEOUT_S)

    letter, now = _run(work)
    if as_json:
        _print_json(_doc(letter) | {"sent_now": now})
    elif now:
        out.print(f"replayed {name} {position} as {letter.replay_partition}:{letter.replay_offset}")
    else:
        out.print(f"nothing sent: {name} {position} is already {letter.status}")


@app.command("discard")
def discard_cmd(
    position: Position,
    reason: Annotated[str, typer.Option("--reason", help="Why it is given up (kept with it).")],
    topic: Topic = None,
    as_json: AsJson = False,
) -> None:
    """Give a dead letter up for good: it stays listed (with --all) as discarded, with why."""
    name = topic or CommonSettings().topic
    partition, offset = _position(position)
    principal = _signed_in()

    async def work(conn: asyncpg.Connection) -> tuple[DeadLetter, bool]:
        await access_log.record(
            conn, principal, "dlq_discard", None,
            {"topic": name, "position": position, "reason": reason},
        )  # fmt: skip
        return await dlq.discard(conn, name, partition, offset, principal.subject, reason)

    letter, now = _run(work)
    if as_json:
        _print_json(_doc(letter) | {"changed_now": now})
    elif now:
        out.print(f"discarded {name} {position}")
    else:
        out.print(f"unchanged: {name} {position} is already {letter.status}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="dlq")
