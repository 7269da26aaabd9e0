"""Fixtures of the aggregator's integration tests: a private topic and consumer group per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from .harness import AggregatorProcess, Target


@pytest.fixture
async def target(kafka_bootstrap: str, database_url: str, unique_id: str) -> AsyncIterator[Target]:
    """A topic, DLQ and consumer group that only this test uses; the topics go afterwards."""
    from aiokafka.admin import AIOKafkaAdminClient

    t = Target(kafka_bootstrap, database_url, f"agg-test-{unique_id}", f"agg-test-{unique_id}")
    yield t
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        mine = [name for name in (t.topic, t.dlq) if name in existing]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


@pytest.fixture
def aggregator(target: Target, tmp_path: Path) -> Iterator[AggregatorProcess]:
    """An aggregator process for the test's target (not started); stopped at the end."""
    proc = AggregatorProcess(target, tmp_path)
    yield proc
    proc.stop()


class PrivatePostgres:
    """A PostgreSQL server of its own (same binaries as the stack), safe to stop mid-test."""

    def __init__(self, home: Path) -> None:
        from services.devtools.procs import free_port
        from services.stack.postgres import PostgresPart
        from services.stack.settings import StackSettings

        self.part = PostgresPart(StackSettings(dir=home, pg_port=free_port()))

    @property
    def database_url(self) -> str:
        return self.part.s.database_url

    async def start(self, timeout_s: float = 60) -> None:
        import asyncio
        import time

        self.part.launch()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await self.part.ensure_database(timeout_s=2)
                await self.part.probe(timeout_s=2)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)

    def stop(self) -> None:
        from services.stack.procs import read_pid, stop

        record = read_pid(self.part.pid_file)
        if record is not None:
            stop(record, sig=self.part.stop_signal, timeout_s=30)
        self.part.pid_file.unlink(missing_ok=True)


@pytest.fixture
async def private_postgres(unique_id: str) -> AsyncIterator[PrivatePostgres]:
    """A migrated PostgreSQL only this test uses (the shared one is never stopped)."""
    import shutil

    from services.common.migrate import upgrade
    from services.stack.settings import StackSettings

    # Beside the shared stack's data: pytest's temporary directories are private to root, and
    # as root the server runs as an unprivileged account that must reach its data directory.
    home = StackSettings().dir / "test-postgres" / unique_id
    pg = PrivatePostgres(home)
    pg.part.prepare(lambda _: None)
    try:
        await pg.start()
        upgrade(pg.database_url)
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(home, ignore_errors=True)
