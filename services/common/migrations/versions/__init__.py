"""Migration revisions, and the one way they run a multi-statement script."""

from __future__ import annotations

from alembic import op
from sqlalchemy.util import await_only


def run_script(sql: str) -> None:
    """Run a multi-statement script inside the migration's transaction.

    SQLAlchemy's asyncpg dialect prepares every statement it sends, and a prepared statement
    holds one command, so ``op.execute`` of a script fails ("cannot insert multiple commands
    into a prepared statement"); asyncpg's own ``execute`` without arguments uses the simple
    query protocol, which takes a script.
    """
    op.execute("SELECT 1")  # opens the dialect's transaction, so the script runs inside it
    driver = op.get_bind().connection.driver_connection
    assert driver is not None, "migrations run over a live asyncpg connection"
    await_only(driver.execute(sql))
