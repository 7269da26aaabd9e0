"""Start the three services as subprocesses unless they already answer; stop what was started."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.devtools.procs import ServiceProcess

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
    started: list[ServiceProcess] = field(default_factory=list)

    def ensure(
        self,
        service: Service,
        say: Say,
        timeout_s: float = 90.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Use the service if it answers on its port, else start it (``env`` laid over ours)
        and wait until it does."""
        if service.answers():
            say(f"{service.name}: already running at {service.url}")
            return
        proc = ServiceProcess(
            service.name, dict(env or {}), self.log_dir, service.port, host=service.host
        )
        self.started.append(proc)
        try:
            proc.start(timeout_s=timeout_s)
        except AssertionError as exc:  # it names the exit or the timeout, with the log's tail
            raise RuntimeError(f"{exc}\n(log {proc.log})") from None
        say(f"{service.name}: started at {service.url} (log {proc.log})")

    def stop_all(self, say: Say) -> None:
        """Stop, newest first, every service this run started."""
        for proc in reversed(self.started):
            proc.stop()
            say(f"{proc.name}: stopped")
        self.started.clear()
