"""Fixtures of the capture tests: the real pipeline as processes, and Debian's Chromium.

Ingest, the aggregator and query run as `opsledger serve ...` processes on a topic and consumer
group private to the session; ingest can be killed (SIGKILL) and started again on its port.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    """One `opsledger serve NAME --port PORT` process that a test may kill and start again."""

    name: str
    env: dict[str, str]
    port: int = field(default_factory=_free_port)
    ready_s: float = 60
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        log_path = ARTIFACTS / f"capture-{self.name}.log"
        with log_path.open("ab") as log:  # a file, not a pipe: a chatty server never blocks
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli.main", "serve", self.name,
                 "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + self.ready_s
        while True:
            if self.proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"opsledger serve {self.name} exited: {tail}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"opsledger serve {self.name} was not ready within {self.ready_s} s")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, in-flight requests lost."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class Pipeline:
    ingest: Served
    query: Served


@pytest.fixture(scope="session")
def pipeline(
    database_url: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """Ingest, aggregator and query on a topic and consumer group of their own."""
    suffix = secrets.token_hex(4)
    env = {
        **os.environ,
        "OPSLEDGER_DATABASE_URL": database_url,
        "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "OPSLEDGER_TOPIC": f"capture-{suffix}",
        "OPSLEDGER_CONSUMER_GROUP": f"capture-{suffix}",
        "OPSLEDGER_AGGREGATOR_DATA_DIR": str(tmp_path_factory.mktemp("faust")),
    }
    aggregator, ingest, query = (
        Served("aggregator", env), Served("ingest", env), Served("query", env)
    )
    with ExitStack() as stack:
        for served in (aggregator, ingest, query):
            stack.callback(served.stop)
            served.start()
        yield Pipeline(ingest, query)


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """Headless Debian Chromium for the session."""
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Debian Chromium binary (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    return CHROMIUM
