"""Start the three services as subprocesses unless they already answer; stop what was started."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

Say = Callable[[str], None]


@dataclass
class Service:
    """One service of the pipeline and where its health endpoint answers."""

    name: str
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class Services:
    """The services this run started (and so stops), with their logs."""

    log_dir: Path
    started: list[tuple[Service, subprocess.Popen[bytes]]] = field(default_factory=list)

    def ensure(self, service: Service, say: Say, timeout_s: float = 90.0) -> None:
        """Use the service if it answers on its port, else start it and wait until it does."""
        if service.answers():
            say(f"{service.name}: already running at {service.url}")
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{service.name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own console entry point
                [sys.executable, "-m", "services.cli.main", "serve", service.name,
                 "--host", service.host, "--port", str(service.port)],
                stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
            )  # fmt: skip
        self.started.append((service, proc))
        deadline = time.monotonic() + timeout_s
        while not service.answers():
            if proc.poll() is not None:
                raise RuntimeError(f"{service.name} exited at start-up; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{service.name} did not answer in {timeout_s:.0f} s; {log_path}"
                )
            time.sleep(0.3)
        say(f"{service.name}: started at {service.url} (log {log_path})")

    def stop_all(self, say: Say) -> None:
        """Stop, newest first, every service this run started."""
        for service, proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            say(f"{service.name}: stopped")
        self.started.clear()
