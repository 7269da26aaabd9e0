"""`opsledger import FILE...`: JSONL or CSV events into the ledger through ingest."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

    from services.importer.rows import ImportFile, Row

err = Console(stderr=True)
REPORT_SUFFIX = ".refused.csv"


def _say(message: str) -> None:
    err.print(message, highlight=False, markup=False, soft_wrap=True)


def import_events(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="JSONL (one event per line) or CSV (one kind per file, docs/import.md).",
            exists=True,
            dir_okay=False,
            readable=True,
            metavar="FILE...",
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            envvar="OPSLEDGER_TOKEN",
            help="Bearer token of a field principal (`opsledger token --role field --operation"
            " OP`); or set OPSLEDGER_TOKEN.",
            show_default=False,
        ),
    ] = None,
    ingest_url: Annotated[
        str | None,
        typer.Option(
            envvar="OPSLEDGER_INGEST_URL",
            help="Base URL of ingest [default: from the ingest settings, http://127.0.0.1:8080].",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Where refused rows are written [default: beside each file, FILE.refused.csv].",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and check every row; send nothing.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each request.")] = 30.0,
) -> None:
    """Import events kept in JSONL or CSV files; importing the same file twice adds nothing.

    Rows without an event_id get a stable one from their content, so a second run sends the
    same ids and the ledger counts each event once. Rows the contract refuses are written to a
    report naming the row and the field; the others are imported. Exit status 1 when any row
    was refused.
    """
    import httpx  # here so that `opsledger --help` stays fast

    from services.importer.rows import ImportFileError, read_import_file
    from services.importer.send import ImportSendError, check_principal, send_rows

    try:
        imported = [read_import_file(path) for path in files]
    except (ImportFileError, UnicodeDecodeError) as exc:
        err.print(f"[bold red]cannot import:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    good = [(f, r) for f in imported for r in f.rows if r.ok]
    refused = [(f, r) for f in imported for r in f.rows if not r.ok]
    for f in imported:
        kind = f" of {f.kind}" if f.kind else ""
        rows = f"{len(f.rows)} row" + ("" if len(f.rows) == 1 else "s")
        _say(f"{f.path}: {rows}{kind}, {sum(not r.ok for r in f.rows)} refused")
    if dry_run:
        _write_reports(refused, imported, report)
        _say(f"dry run: {len(good)} events would be sent, {len(refused)} rows refused")
        raise typer.Exit(1 if refused else 0)
    if good and not token:
        err.print(
            "[bold red]no token:[/] pass --token or set OPSLEDGER_TOKEN to a field principal's"
            " token (`opsledger token --role field --operation OP`)",
            highlight=False,
        )
        raise typer.Exit(2)
    accepted = 0
    if good:
        base = ingest_url or _default_ingest_url()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=timeout) as client:
            try:
                who = check_principal(client)
                _say(f"importing as {who['subject']} ({who['role']}) into {base}")
                with _progress() as progress:
                    task = progress.add_task("importing events", total=len(good))
                    result = send_rows(client, good, lambda n: progress.advance(task, n))
            except ImportSendError as exc:
                err.print(f"[bold red]import stopped:[/] {exc}", highlight=False)
                raise typer.Exit(1) from None
        accepted = result.accepted
        refused += result.refused
    _write_reports(refused, imported, report)
    _say(
        f"{accepted} events taken by ingest (each event_id is counted once by the ledger),"
        f" {len(refused)} rows refused"
    )
    if refused:
        raise typer.Exit(1)


def _default_ingest_url() -> str:
    from services.ingest.settings import IngestSettings

    settings = IngestSettings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def _write_reports(
    refused: list[tuple[ImportFile, Row]], imported: list[ImportFile], report: Path | None
) -> None:
    """One CSV per file beside it (or all in ``report``): file, row, field, message."""
    by_file: dict[Path, list[tuple[str, int, str, str]]] = {}
    for f, row in sorted(refused, key=lambda fr: (str(fr[0].path), fr[1].number)):
        target = report or f.path.with_name(f.path.name + REPORT_SUFFIX)
        for e in row.errors:
            line = (str(f.path), row.number, e["field"], e["message"])
            by_file.setdefault(target, []).append(line)
    stale = {f.path.with_name(f.path.name + REPORT_SUFFIX) for f in imported} - set(by_file)
    for path in stale if report is None else ():
        path.unlink(missing_ok=True)  # an old report of a file that now imports cleanly
    for path, lines in by_file.items():
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["file", "row", "field", "message"])
            writer.writerows(lines)
        _say(f"refused rows: {path}")


def register(app: typer.Typer) -> None:
    app.command("import")(import_events)
