"""`opsledger checkpoint`, `keys`, `proof`, `prove`: the transparency log from the command line.

Reads go straight to PostgreSQL (like `verify`); signing (`checkpoint --issue`, `prove`) uses
the ledger's key from `OPSLEDGER_TLOG_SIGNING_KEY`, or in development the key file in
`.local/tlog/`. Reads of event content (`proof inclusion`, `prove`) are logged as auditor reads.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID

import asyncpg
import orjson
import typer

from services.common import access_log
from services.common.db import create_pool
from services.tlog import checkpoints
from services.tlog.keys import Signer, ledger_signer
from services.tlog.proofs import ProofError, consistency_doc, inclusion_doc
from services.tlog.prove import prove_metric
from services.tlog.settings import TlogSettings
from services.tlog.verifier import COSIGNATURE_V1, ED25519

T = TypeVar("T")
keys_app = typer.Typer(help="The ledger's signing key.", no_args_is_help=True)
proof_app = typer.Typer(help="Inclusion and consistency proofs.", no_args_is_help=True)

Output = Annotated[
    Path | None, typer.Option("-o", "--output", help="Write to this file instead of stdout.")
]
OperationOpt = Annotated[str, typer.Option("--operation", help="The operation.")]


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)


def _json(doc: Any) -> str:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"


def _with_conn(fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run ``fn`` on one database connection; one clear line and exit 3 if it cannot."""
    settings = TlogSettings()

    async def run() -> T:
        pool = await create_pool(settings.database_url, max_size=2)
        try:
            async with pool.acquire() as conn:
                return await fn(conn)
        finally:
            await pool.close()

    try:
        return asyncio.run(run())
    except ProofError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2 if exc.status == 404 else 1) from None
    except checkpoints.ForkRefused as exc:
        typer.echo(f"REFUSED: {exc}", err=True)
        raise typer.Exit(1) from None
    except asyncpg.UndefinedTableError as exc:
        typer.echo(f"the database is not migrated ({exc}): run `opsledger migrate`", err=True)
    except (OSError, asyncpg.PostgresConnectionError) as exc:
        typer.echo(f"cannot reach PostgreSQL: {exc}", err=True)
    raise typer.Exit(3)


def checkpoint(
    operation: OperationOpt,
    output: Output = None,
    size: Annotated[int | None, typer.Option(help="The checkpoint of this size.", min=1)] = None,
    issue: Annotated[
        bool, typer.Option("--issue", help="Sign one now if the tree grew (on demand).")
    ] = False,
) -> None:
    """Print the operation's latest signed checkpoint (C2SP tlog-checkpoint, signed note)."""
    signer = ledger_signer(TlogSettings()) if issue else None

    async def read(conn: asyncpg.Connection) -> checkpoints.Stored | None:
        if signer is not None:
            fresh = await checkpoints.issue(conn, operation, signer, "demand", size=size)
            if fresh is not None:
                return fresh
        if size is not None:
            return await checkpoints.at_size(conn, operation, size)
        return await checkpoints.latest(conn, operation)

    stored = _with_conn(read)
    if stored is None:
        typer.echo(
            f"operation {operation!r} has no checkpoint" + (f" of size {size}" if size else ""),
            err=True,
        )
        raise typer.Exit(2)
    _emit(stored.note, output)


@keys_app.command("public")
def keys_public(output: Output = None) -> None:
    """Print the ledger's public key (a signed-note verifier key) for verifiers to keep."""
    _emit(str(ledger_signer(TlogSettings()).public) + "\n", output)


@keys_app.command("generate")
def keys_generate(
    name: Annotated[str, typer.Option(help="Key name, e.g. ledger.force.example or a witness.")],
    witness: Annotated[
        bool, typer.Option("--witness", help="A witness cosigning key (type 0x04).")
    ] = False,
    output: Output = None,
) -> None:
    """Print a new private signer key (keep it secret: a production secret or a 0600 file)."""
    signer = Signer.generate(name, COSIGNATURE_V1 if witness else ED25519)
    _emit(signer.secret() + "\n", output)
    typer.echo(f"public: {signer.public}", err=True)


@proof_app.command("inclusion")
def proof_inclusion(
    operation: OperationOpt,
    event_id: Annotated[UUID, typer.Option("--event-id", help="The event to prove.")],
    size: Annotated[
        int | None, typer.Option(help="Tree size (default: latest checkpoint).")
    ] = None,
    output: Output = None,
) -> None:
    """The inclusion proof of one event, with its leaf and the signed checkpoint."""

    async def run(conn: asyncpg.Connection) -> dict[str, Any]:
        params = {"event_id": str(event_id), **({"size": size} if size else {})}
        await access_log.record(
            conn, access_log.cli_principal(), "proof_inclusion", operation, params
        )
        return await inclusion_doc(conn, operation, event_id, size)

    _emit(_json(_with_conn(run)), output)


@proof_app.command("consistency")
def proof_consistency(
    operation: OperationOpt,
    size1: Annotated[int, typer.Option("--from", help="The older tree size.", min=1)],
    size2: Annotated[
        int | None, typer.Option("--to", help="The newer size (default: latest).")
    ] = None,
    output: Output = None,
) -> None:
    """The proof that the tree at --to extends the tree at --from, with both checkpoints."""
    _emit(_json(_with_conn(lambda conn: consistency_doc(conn, operation, size1, size2))), output)


def prove(
    operation: OperationOpt,
    metric: Annotated[str, typer.Option(help="The figure, e.g. arrests or warrants_executed.")],
    output: Output = None,
) -> None:
    """Write the inclusion proofs of the events behind a figure (checkable offline)."""
    signer = ledger_signer(TlogSettings())

    async def run(conn: asyncpg.Connection) -> dict[str, Any]:
        await access_log.record(
            conn, access_log.cli_principal(), "prove", operation, {"metric": metric}
        )
        return await prove_metric(conn, operation, metric, signer)

    doc = _with_conn(run)
    _emit(_json(doc), output)
    typer.echo(
        f"{metric} = {doc['figure']}: {len(doc['events'])} events proven in the tree of size"
        f" {doc['tree_size']}; check with `python -m services.tlog.verifier FILE --public-key KEY`",
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.command("checkpoint")(checkpoint)
    app.add_typer(keys_app, name="keys")
    app.add_typer(proof_app, name="proof")
    app.command("prove")(prove)
