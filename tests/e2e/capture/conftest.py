"""Fixtures of the capture tests: the real pipeline as processes, and Debian's Chromium.

Ingest, the aggregator and query run as `opsledger serve ...` processes on a topic and consumer
group private to the session; ingest can be killed (SIGKILL) and started again on its port.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from services.devtools.procs import ServiceProcess

CHROMIUM = "/usr/bin/chromium"
# Never a downloaded browser: Debian's Chromium, quiet (no update, sync or QUIC traffic).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@dataclass(frozen=True)
class Pipeline:
    ingest: ServiceProcess
    query: ServiceProcess


@pytest.fixture(scope="session")
def pipeline(
    database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """Ingest, aggregator and query on a topic and consumer group of their own."""
    suffix = secrets.token_hex(4)
    env = {
        "OPSLEDGER_DATABASE_URL": database_url,
        "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "OPSLEDGER_TOPIC": f"capture-{suffix}",
        "OPSLEDGER_CONSUMER_GROUP": f"capture-{suffix}",
        "OPSLEDGER_AGGREGATOR_DATA_DIR": str(tmp_path_factory.mktemp("faust")),
    }
    services = [
        ServiceProcess(name, env, ARTIFACTS, label=f"capture-{name}")
        for name in ("aggregator", "ingest", "query")
    ]
    with ExitStack() as stack:
        for service in services:
            stack.callback(service.stop)
            service.start(wait=False)
            service.wait_healthy(60, "/readyz")
        yield Pipeline(ingest=services[1], query=services[2])


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Debian Chromium binary (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """Headless Debian Chromium for the session."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        await b.close()
