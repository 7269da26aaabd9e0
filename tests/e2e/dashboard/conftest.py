"""Fixtures of the dashboard test: `opsledger serve query` as a real process, and a browser."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from services.common.db import create_pool
from services.devtools.procs import ServiceProcess, free_port
from tests.integration.query.ledger import Ledger

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(scope="session")
def query_env(database_url: str) -> dict[str, str]:
    """Environment of the query process: a topic and consumer group private to this session."""
    suffix = secrets.token_hex(4)
    return {
        **os.environ,
        "OPSLEDGER_DATABASE_URL": database_url,
        "OPSLEDGER_TOPIC": f"dash-test-{suffix}",
        "OPSLEDGER_CONSUMER_GROUP": f"dash-test-{suffix}",
        "OPSLEDGER_QUERY_PORT": str(free_port()),
    }


@contextlib.contextmanager
def serve(name: str, env: dict[str, str], port: int, ready_s: float = 30) -> Iterator[str]:
    """`opsledger serve <name> --port <port>` until the block ends; its base URL once ready."""
    service = ServiceProcess(name, env, ARTIFACTS, port, label=f"dashboard-{name}")
    try:
        service.start(wait=False)
        service.wait_healthy(ready_s, "/readyz")
        yield service.url
    finally:
        service.stop()


@pytest.fixture(scope="session")
def served_query(query_env: dict[str, str]) -> Iterator[str]:
    """`opsledger serve query` running for the session; its base URL."""
    with serve("query", query_env, int(query_env["OPSLEDGER_QUERY_PORT"])) as url:
        yield url


@pytest.fixture(scope="session")
def served_pipeline(
    query_env: dict[str, str], kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`opsledger serve ingest` and `serve aggregator` on a topic and group of their own.

    Not the `ledger` fixture's: that one records offsets for its topic and group as if an
    aggregator had applied them, and a real aggregator on the same pair would rightly skip the
    records at those offsets as already applied. The query service reads totals by operation,
    so it sees both.
    """
    suffix = secrets.token_hex(4)
    env = {
        **query_env,
        "OPSLEDGER_TOPIC": f"dash-pipeline-{suffix}",
        "OPSLEDGER_CONSUMER_GROUP": f"dash-pipeline-{suffix}",
        "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "OPSLEDGER_AGGREGATOR_DATA_DIR": str(tmp_path_factory.mktemp("faust")),
    }
    with (
        serve("aggregator", env, free_port(), ready_s=60),
        serve("ingest", env, free_port()) as ingest_url,
    ):
        yield ingest_url


@pytest.fixture(scope="session")
async def ledger(query_env: dict[str, str]) -> AsyncIterator[Ledger]:
    """Writes events as the aggregator does (NOTIFY included) for the session's topic."""
    pool = await create_pool(query_env["OPSLEDGER_DATABASE_URL"], max_size=2)
    yield Ledger(pool, query_env["OPSLEDGER_TOPIC"], query_env["OPSLEDGER_CONSUMER_GROUP"])
    await pool.close()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Debian Chromium binary (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """Headless Chromium for the session."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        await b.close()
