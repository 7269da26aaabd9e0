"""Alembic environment: runs migrations over SQLAlchemy's asyncpg dialect (no second driver)."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    dsn = config.get_main_option("opsledger.dsn")
    if dsn:  # asyncpg parses the DSN, TLS parameters (sslmode, sslrootcert) included
        engine = create_async_engine(
            "postgresql+asyncpg://",
            poolclass=pool.NullPool,
            async_creator=lambda: asyncpg.connect(dsn),
        )
    else:
        engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported; run `opsledger migrate`")
asyncio.run(_run_async())
