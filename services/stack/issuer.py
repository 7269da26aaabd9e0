"""The development token issuer as a part of the local stack (see services/stack/devissuer)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

import httpx

from services.stack.devissuer.keys import load_or_create
from services.stack.procs import PidRecord, StackError, spawn, write_pid
from services.stack.settings import StackSettings

Say = Callable[[str], None]


class IssuerPart:
    """Serves the discovery document and JWKS of the key pair under ``<stack dir>/issuer``."""

    name = "issuer"
    stop_signal = signal.SIGTERM

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.home = settings.issuer_dir
        self.log = self.home / "issuer.log"
        self.pid_file = self.home / "issuer.pid"
        self.address = settings.issuer_url

    @property
    def ports(self) -> list[tuple[int, str]]:
        return [(self.s.issuer_port, "development token issuer")]

    def prepare(self, say: Say) -> None:
        """The key pair exists (generated on first use) and its JWKS is written."""
        fresh = not (self.home / "signing-key.pem").exists()
        key = load_or_create(self.home)
        if fresh:
            say(f"issuer: generated a development key pair (kid {key.kid}) in {self.home}")

    def launch(self) -> PidRecord:
        argv = [sys.executable, "-m", "services.stack.devissuer", "--host", self.s.host,
                "--port", str(self.s.issuer_port), "--dir", str(self.home),
                "--issuer", self.address]  # fmt: skip
        proc = spawn(argv, log=self.log, cwd=self.home)
        return write_pid(self.pid_file, proc.pid)

    async def probe(self, timeout_s: float = 5.0) -> None:
        """Raise unless the discovery document names this issuer."""
        url = f"{self.address}/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=timeout_s) as client:
                response = await client.get(url)
        except httpx.HTTPError as exc:
            raise StackError(f"no issuer at {url}: {exc}") from None
        if response.status_code != 200 or response.json().get("issuer") != self.address:
            raise StackError(f"{url} answered {response.status_code}: {response.text[:200]}")
