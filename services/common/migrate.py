"""Database migrations (alembic), applied by `opsledger migrate` and by `opsledger stack up`."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sqlalchemy_url(dsn: str) -> str:
    """The asyncpg DSN in SQLAlchemy's spelling (postgresql+asyncpg://...)."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    return dsn


def alembic_config(dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    # asyncpg itself reads the DSN (env.py): SQLAlchemy would pass libpq's TLS parameters
    # (sslmode=verify-full, sslrootcert) to asyncpg.connect as unknown keyword arguments.
    cfg.set_main_option("opsledger.dsn", dsn.replace("%", "%%"))
    return cfg


def _in_own_thread(fn: object, *args: object) -> None:
    """Run alembic (which calls asyncio.run) off any running event loop."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn(*args)  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="alembic")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def upgrade(dsn: str, revision: str = "head") -> None:
    """Bring the database at ``dsn`` up to ``revision``; harmless when already there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(dsn), revision)
    else:
        _in_own_thread(command.upgrade, alembic_config(dsn), revision)


def current(dsn: str) -> None:
    """Print the current revision."""
    command.current(alembic_config(dsn), verbose=False)
