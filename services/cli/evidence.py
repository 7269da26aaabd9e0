"""`opsledger verify`, `opsledger export`, `opsledger rebuild`: the auditor's evidence commands.

Each runs as the subject of the caller's bearer token (``--token`` or ``$OPSLEDGER_TOKEN``, role
auditor or admin) and logs itself in audit.access_log under that subject (offline bundle checks
touch no database, need no token and are not logged).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
import orjson
import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from services.aggregator.settings import AggregatorSettings
from services.audit import repository as repo
from services.audit.export import FORMATS, Format, View, verify_bundle
from services.audit.rebuild import RebuildReport, rebuild
from services.audit.replay import DEFAULT_WORKERS
from services.audit.service import (
    UnknownOperation,
    disclosure,
    export_operation,
    verify_operation,
)
from services.audit.verify import VerifyReport
from services.cli.params import instant
from services.common import access_log
from services.common.auth import Principal
from services.common.db import connect, create_pool
from services.common.settings import CommonSettings
from services.ledger.shadow import SwapRefused, drop_previous, undo_swap
from services.tlog import kept
from services.tlog.kept import KeptReport
from services.tlog.keys import ledger_signer
from services.tlog.settings import TlogSettings
from services.tlog.verifier import VerificationError, VerifierKey

T = TypeVar("T")
console = Console(stderr=True)
out = Console()


def _instant(value: str | None, name: str) -> datetime | None:
    return None if value is None else instant(value, name)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a database-backed command; turn the usual setup failures into one clear line."""
    try:
        return asyncio.run(coro)
    except asyncpg.UndefinedTableError as exc:
        console.print(f"[red]the database is not migrated ({exc}): run `opsledger migrate`[/]")
    except (OSError, asyncpg.PostgresConnectionError, KafkaError) as exc:
        console.print(f"[red]cannot reach PostgreSQL or Kafka: {exc}[/]")
    except LookupError as exc:  # e.g. the topic to replay does not exist
        console.print(f"[red]{exc}[/]")
    raise typer.Exit(3)


def _signed_in() -> Principal:
    """Who runs this command, from its token; a clear refusal (exit 2) without a valid one."""
    try:
        return access_log.cli_principal()
    except access_log.CliAuthError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


def _print_json(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


# ---- verify -----------------------------------------------------------------------------


def _verify_table(reports: list[VerifyReport]) -> Table:
    table = Table(title="opsledger verify")
    for column in ("operation", "events", "chain", "totals", "derived rows"):
        table.add_column(column)
    for r in reports:
        chain = (
            "[green]intact[/]"
            if r.chain_intact
            else f"[red]broken at seq {r.first_broken_seq}[/]: {r.chain_problems[0].reason}"
        )
        totals = (
            "[green]match[/]"
            if r.totals_match
            else "[red]differ[/]: "
            + ", ".join(
                f"{d.metric} events={d.expected} projection={d.actual}" for d in r.metric_diffs
            )
            + (f" ({len(r.row_diffs)} row(s))" if r.row_diffs else "")
            + (
                f" contributions≠totals on {len(r.contribution_diffs)} row(s)"
                if r.contribution_diffs
                else ""
            )
        )
        derived = (
            "[green]match[/]"
            if r.derived_match
            else f"[red]{len(r.derived_diffs)} differ[/]: "
            + "; ".join(
                f"{d.table} row of {d.event_id}"
                + (f" (seq {d.seq})" if d.seq is not None else "")
                + f": {d.detail}"
                for d in r.derived_diffs[:3]
            )
        )
        table.add_row(r.operation_id, str(r.events), chain, totals, derived)
    return table


async def _verify_db(
    settings: CommonSettings, operation: str | None, principal: Principal
) -> list[VerifyReport] | None:
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            ops = [operation] if operation else await repo.operations(conn)
            if operation and operation not in await repo.operations(conn):
                await access_log.record(conn, principal, "verify", operation, {})
                return None
            reports = []
            for op in ops:
                await access_log.record(conn, principal, "verify", op, {})
                reports.append(await verify_operation(conn, op))
            return reports
    finally:
        await pool.close()


def verify(
    operation: Annotated[
        str | None, typer.Option("--operation", help="Only this operation (default: all).")
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Check an evidence bundle offline instead (no database)."),
    ] = None,
    access: Annotated[
        bool,
        typer.Option("--access-log", help="Check the access log's hash chain instead."),
    ] = False,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="Also check the database against this kept checkpoint (needs --operation).",
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The ledger's verifier key file (default: this ledger's own key).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Recompute hash chains and totals from events; exit 0 only when everything is intact.

    With --checkpoint, also recompute the operation's Merkle tree from today's events and check
    it against a checkpoint kept earlier (this catches a rewrite that recomputed every hash).
    With --export and --public-key, also check the bundle's signed checkpoint and leaves.
    """
    if access:
        _verify_access_log(as_json)
    kept_report: KeptReport | None = None
    if checkpoint is not None:
        if operation is None or export is not None:
            raise typer.BadParameter("--checkpoint needs --operation (and no --export)")
        kept_report = _verify_kept(operation, checkpoint, public_key, as_json)
    if export is not None:
        key = _verifier_key(public_key) if public_key is not None else None
        bundle = verify_bundle(export, key)
        if as_json:
            _print_json(bundle.to_dict())
        else:
            for problem in bundle.problems:
                out.print(f"[red]✗[/] {problem}")
            if bundle.tree is not None:
                out.print(
                    f"[green]✓[/] its {bundle.tree['size']} events are exactly the leaves of"
                    f" {bundle.tree['origin']}, signed by {bundle.tree['signed_by']}"
                )
            if bundle.verify is not None:
                out.print(_verify_table([bundle.verify]))
            out.print("[green]bundle intact[/]" if bundle.ok else "[red]bundle NOT intact[/]")
        raise typer.Exit(0 if bundle.ok else 1)
    reports = _run(_verify_db(CommonSettings(), operation, _signed_in()))
    if reports is None:
        console.print(
            f"[red]no events, chain head or totals for operation {operation!r}[/]"
            f" (database {_where(CommonSettings())})"
        )
        raise typer.Exit(2)
    ok = all(r.ok for r in reports) and (kept_report is None or kept_report.ok)
    if as_json:
        doc: dict[str, Any] = {"ok": ok, "operations": [r.to_dict() for r in reports]}
        if kept_report is not None:
            doc["checkpoint"] = kept_report.to_dict()
        _print_json(doc)
    else:
        out.print(_verify_table(reports))
        bad = [r.operation_id for r in reports if not r.ok]
        out.print(
            f"[red]{len(bad)} of {len(reports)} operation(s) NOT intact[/]"
            if bad
            else f"[green]{len(reports)} operation(s) intact[/]"
        )
        if kept_report is not None and not kept_report.ok:
            out.print("[red]NOT consistent with the kept checkpoint[/] (see above)")
    raise typer.Exit(0 if ok else 1)


def _verifier_key(path: Path) -> VerifierKey:
    try:
        return VerifierKey.parse(path.read_text())
    except (OSError, VerificationError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--public-key") from None


async def _kept_report(
    settings: TlogSettings, operation: str, note: str, key: VerifierKey
) -> KeptReport:
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            await access_log.record(
                conn, access_log.cli_principal(), "verify", operation, {"checkpoint": True}
            )
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rows, leaves, notes = await kept.load(conn, operation)
    finally:
        await pool.close()
    origin = f"{key.name}/{operation}"
    return kept.check(operation, origin, key, note, rows, leaves, notes)


def _verify_kept(operation: str, path: Path, public_key: Path | None, as_json: bool) -> KeptReport:
    """verify --checkpoint: the database's tree against the kept checkpoint (printed, or JSON)."""
    settings = TlogSettings()
    key = _verifier_key(public_key) if public_key else ledger_signer(settings).public
    try:
        note = path.read_text()
    except OSError as exc:
        raise typer.BadParameter(str(exc), param_hint="--checkpoint") from None
    report = _run(_kept_report(settings, operation, note, key))
    if not as_json:
        size = report.kept.size if report.kept else "?"
        if report.ok:
            out.print(
                f"[green]consistent[/]: the database's {report.leaves} events reproduce the kept"
                f" checkpoint (size {size}) and {report.references} signed by the ledger"
            )
        for problem in report.problems:
            out.print(f"[red]✗[/] {problem}")
        if report.first_differing_seq is not None:
            out.print(
                f"[red]first differing leaf: seq {report.first_differing_seq}"
                f" (event {report.first_differing_event})[/]"
            )
    return report


async def _access_chain(settings: CommonSettings, principal: Principal) -> access_log.ChainReport:
    conn = await connect(settings.database_url)
    try:
        await access_log.record(conn, principal, "verify_access_log", None, {})
        return await access_log.verify_chain(conn)
    finally:
        await conn.close()


def _verify_access_log(as_json: bool) -> None:
    report = _run(_access_chain(CommonSettings(), _signed_in()))
    if as_json:
        _print_json(report.to_dict())
    else:
        for problem in report.problems:
            out.print(f"[red]✗[/] {problem}")
        out.print(
            f"[green]access log intact[/]: {report.rows} rows, head seq {report.head_seq}"
            if report.ok
            else f"[red]access log NOT intact[/]: first break at seq {report.first_broken_seq}"
        )
    raise typer.Exit(0 if report.ok else 1)


# ---- export -----------------------------------------------------------------------------


async def _export(
    settings: CommonSettings,
    operation: str,
    path: Path,
    fmt: Format,
    view: View,
    principal: Principal,
) -> dict[str, Any]:
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            try:
                manifest = await export_operation(
                    conn, operation, path, fmt=fmt, view=view, created_by=principal.subject,
                    signer=ledger_signer(TlogSettings()),
                )  # fmt: skip
            except UnknownOperation:  # a consultation all the same: logged, nothing disclosed
                await access_log.record(
                    conn, principal, "export", operation, {"format": fmt, **view.to_dict()}
                )
                raise
            # The disclosure: logged before the command reports the file as written.
            bundle = await asyncio.to_thread(path.read_bytes)
            await access_log.record(
                conn, principal, "export", operation, disclosure(manifest, bundle)
            )
            return manifest
    finally:
        await pool.close()


def _where(settings: CommonSettings) -> str:
    """host:port/db of the database read, so a user who forgot `stack env` sees which one."""
    return settings.database_url.rpartition("@")[2]


def export(
    operation: Annotated[str, typer.Option("--operation", help="The operation to export.")],
    fmt: Annotated[str, typer.Option("--format", help="Events file: jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Bundle path (default <op>-evidence.tar).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Totals of what had happened by T (occurred_at).")
    ] = None,
    known_at: Annotated[
        str | None, typer.Option("--known-at", help="Totals of what the ledger knew at T.")
    ] = None,
) -> None:
    """Write an evidence bundle (events + manifest); check it later with `verify --export`."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}", param_hint="--format")
    view = View(as_of=_instant(as_of, "--as-of"), known_at=_instant(known_at, "--known-at"))
    path = output or Path(f"{operation}-evidence.tar")
    settings = CommonSettings()
    try:
        manifest = _run(_export(settings, operation, path, fmt, view, _signed_in()))
    except UnknownOperation as exc:
        console.print(f"[red]{exc}[/] (database {_where(settings)}); nothing written")
        raise typer.Exit(2) from None
    out.print(
        f"wrote {path}: {manifest['counts']['events']} events"
        f" ({manifest['counts']['in_view']} in view), chain head {manifest['chain']['head_hash']},"
        f" {manifest['events_file']} sha256 {manifest['events_sha256']}"
    )


# ---- rebuild ----------------------------------------------------------------------------


class _Bar:
    """The rebuild's progress as a rich bar: records of the log, events/s, ETA."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("replaying", total=None, rate="")
        self.events = 0
        self.total = 0
        self.t0 = time.monotonic()

    def started(self, total_records: int) -> None:
        self.total += total_records
        self.progress.update(self.task, total=self.total)

    def advanced(self, records: int, events: int) -> None:
        self.events += events
        rate = self.events / max(time.monotonic() - self.t0, 1e-9)
        self.progress.update(self.task, advance=records, rate=f"{rate:,.0f} events/s")

    def phase(self, name: str) -> None:
        self.progress.update(self.task, description=name, rate="")


def _rebuild_summary(report: RebuildReport) -> None:
    out.print(
        f"replayed {report.records:,} records, {report.events:,} events"
        f" ({report.duplicates:,} duplicates, {report.conflicts} conflicts, {report.poison} poison)"
        f" in {report.seconds:.1f} s: {report.events_per_s:,.0f} events/s"
    )
    for note in report.notes:
        out.print(f"[yellow]note:[/] {note}")
    if report.matches:
        out.print(
            f"[green]rebuilt projection equals the live one[/] ({report.operations} operations)"
        )
    else:
        table = Table(title="differences (live vs rebuilt from the log)")
        for column in ("operation", "metric", "detail", "area", "unit", "day", "live", "rebuilt"):
            table.add_column(column)
        for d in report.totals_differences[:200]:
            table.add_row(
                d.operation_id,
                d.metric,
                d.detail,
                d.area,
                d.unit,
                d.day,
                str(d.live),
                str(d.rebuilt),
            )
        out.print(table)
        for h in report.head_differences[:200]:
            out.print(
                f"[red]chain head differs[/] {h.operation_id}: live {h.live} rebuilt {h.rebuilt}"
            )
    if report.swapped:
        out.print(
            f"[green]swapped in[/]; the replaced ledger is kept as {report.replaced_schema}"
            " (`opsledger rebuild --undo` swaps it back, `--drop-previous` drops it)"
        )


def rebuild_cmd(
    until: Annotated[
        str | None, typer.Option("--until", help="Replay only submissions recorded by T.")
    ] = None,
    swap: Annotated[
        bool, typer.Option("--swap", help="Replace the live projection with the rebuilt one.")
    ] = False,
    topic: Annotated[
        str | None, typer.Option("--topic", help="Log to replay (default: settings).")
    ] = None,
    only_seen: Annotated[
        bool,
        typer.Option("--only-seen", help="Compare only operations found in the topic."),
    ] = False,
    keep_shadow: Annotated[
        bool, typer.Option("--keep-shadow", help="Keep the shadow schema for inspection.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=1, max=32, help="Processes for the first pass (partitions split)."
        ),
    ] = DEFAULT_WORKERS,
    force: Annotated[
        list[str] | None,
        typer.Option(
            "--force",
            metavar="OPERATION",
            help="With --swap: accept that OPERATION loses events or chain positions (repeat for"
            " each); without it a swap that loses anything the live ledger holds is refused.",
        ),
    ] = None,
    undo: Annotated[
        bool,
        typer.Option(
            "--undo",
            help="Swap the ledger replaced by the last --swap back in (kept until"
            " --drop-previous); refused like a swap if that loses events, unless --force.",
        ),
    ] = False,
    drop_previous: Annotated[
        bool,
        typer.Option("--drop-previous", help="Drop the ledgers replaced by earlier swaps."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute the projection from the log in a shadow schema; exit 1 if it differs from live.

    --swap replaces the live ledger with the rebuilt one, but refuses (exit 4) when the rebuilt
    one lacks an operation, an event or chain positions that the live one has (a mistyped
    --topic, a log lost with a cleared volume) unless --force names each such operation. The
    replaced ledger is kept: --undo swaps it back, --drop-previous removes it.
    """
    settings = AggregatorSettings()
    when = _instant(until, "--until")
    accepted = frozenset(force or [])
    if undo or drop_previous:
        _previous(settings, undo=undo, drop=drop_previous, accepted=accepted, as_json=as_json)
        return
    principal = _signed_in()

    async def run(progress: Progress | None) -> RebuildReport:
        # After the load, each table's steps run on a connection of their own (five tables).
        pool = await create_pool(settings.database_url, max_size=6)
        try:
            return await rebuild(
                pool,
                settings,
                topic or settings.topic,
                principal=principal,
                consumer_group=settings.consumer_group,
                until=when,
                only_seen=only_seen,
                swap=swap,
                keep_shadow=keep_shadow,
                progress=None if progress is None else _Bar(progress),
                dsn=settings.database_url,
                workers=workers,
                force=accepted,
                memory_bytes=settings.rebuild_memory_mb * 2**20 or None,
            )
        finally:
            await pool.close()

    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
            transient=as_json,
        ) as progress:
            report = _run(run(progress))
    except SwapRefused as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(4) from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if as_json:
        _print_json(report.to_dict())
    else:
        _rebuild_summary(report)
        if report.shadow and not report.swapped and keep_shadow:
            out.print(f"shadow schema kept: {report.shadow}")
    raise typer.Exit(0 if report.matches else 1)


def _previous(
    settings: AggregatorSettings, *, undo: bool, drop: bool, accepted: frozenset[str], as_json: bool
) -> None:
    """`rebuild --undo` / `rebuild --drop-previous`, each written to the access log."""

    async def run() -> dict[str, Any]:
        conn = await asyncpg.connect(settings.database_url, timeout=10)
        try:
            principal = _signed_in()
            doc: dict[str, Any] = {}
            if undo:
                await access_log.record(
                    conn, principal, "rebuild", None, {"undo": True, "force": sorted(accepted)}
                )
                doc["restored"], doc["replaced"] = await undo_swap(conn, set(accepted))
            if drop:
                await access_log.record(conn, principal, "rebuild", None, {"drop_previous": True})
                doc["dropped"] = await drop_previous(conn)
            return doc
        finally:
            await conn.close()

    try:
        doc = _run(run())
    except SwapRefused as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(4) from None
    if as_json:
        _print_json(doc)
        return
    if "restored" in doc:
        out.print(
            f"swapped {doc['restored']} back in; the replaced ledger is kept as {doc['replaced']}"
        )
    if "dropped" in doc:
        out.print(f"dropped {len(doc['dropped'])} replaced ledger(s): {', '.join(doc['dropped'])}")


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("export")(export)
    app.command("rebuild")(rebuild_cmd)
