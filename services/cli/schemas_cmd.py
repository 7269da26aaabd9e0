"""`opsledger schemas`: the event contract's JSON Schema files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from schemas.export import SCHEMA_DIR, stale_schemas, write_schemas


def register(app: typer.Typer) -> None:
    """Add the ``schemas`` command group to the CLI."""
    group = typer.Typer(help="The event contract as JSON Schema files for field apps.")

    @group.command("export")
    def export(
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Directory to write into.")
        ] = SCHEMA_DIR,
        check: Annotated[
            bool,
            typer.Option("--check", help="Write nothing; exit 1 if the files differ."),
        ] = False,
    ) -> None:
        """Write one JSON Schema per kind and field-event.schema.json (draft 2020-12)."""
        if check:
            stale = stale_schemas(out)
            for name in stale:
                typer.echo(f"stale: {out / name}", err=True)
            raise typer.Exit(1 if stale else 0)
        for path in write_schemas(out):
            typer.echo(str(path))

    app.add_typer(group, name="schemas")
