"""`opsledger migrate`: apply the database migrations."""

from __future__ import annotations

import typer

from services.common.migrate import upgrade
from services.common.settings import DatabaseSettings


def migrate() -> None:
    """Bring the database (DATABASE_URL) up to the newest schema; safe to run again."""
    settings = DatabaseSettings()
    upgrade(settings.database_url)
    typer.echo("database is at the newest revision")


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)
