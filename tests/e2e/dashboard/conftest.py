"""Fixtures of the dashboard test: `opsledger serve query` as a real process, and a browser."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from services.common.db import create_pool
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def query_env(database_url: str) -> dict[str, str]:
    """Environment of the query process: a topic and consumer group private to this session."""
    suffix = secrets.token_hex(4)
    return {
        **os.environ,
        "OPSLEDGER_DATABASE_URL": database_url,
        "OPSLEDGER_TOPIC": f"dash-test-{suffix}",
        "OPSLEDGER_CONSUMER_GROUP": f"dash-test-{suffix}",
        "OPSLEDGER_QUERY_PORT": str(_free_port()),
    }


@pytest.fixture(scope="session")
def served_query(query_env: dict[str, str]) -> Iterator[str]:
    """`opsledger serve query` running for the session; its base URL."""
    port = query_env["OPSLEDGER_QUERY_PORT"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "dashboard-query-server.log"
    log = log_path.open("wb")  # a file, not a pipe: a chatty server can never block on it
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "serve", "query", "--port", port],
        env=query_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    try:
        while True:
            if proc.poll() is not None:
                err = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"opsledger serve query exited: {err}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("opsledger serve query was not ready within 20 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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
