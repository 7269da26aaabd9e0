"""The services as real subprocesses (`opsledger serve ...`) that a test can SIGKILL and restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

OPSLEDGER = str(Path(sys.executable).with_name("opsledger"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Service:
    """One `opsledger serve <name> --port P` process with its own environment and log file."""

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path, port: int | None = None):
        self.name = name
        self.port = port or free_port()
        self.env = {**os.environ, **env}
        self.log = log_dir / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True, timeout_s: float = 60.0) -> None:
        """Spawn the process (in its own process group) and wait until /healthz answers."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"\n==== start #{self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(  # noqa: S603 - our own console script, fixed argv
                [OPSLEDGER, "serve", self.name, "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if wait:
            self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 60.0, path: str = "/healthz") -> None:
        """Poll ``path`` until it answers 200; fail with the log tail if the process died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not answer {path} in {timeout_s} s:\n{self.tail()}")

    def sigkill(self) -> None:
        """SIGKILL the process group (a crash: no shutdown code runs) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def freeze_then_kill(self, frozen_s: float = 0.3) -> None:
        """SIGSTOP, then SIGKILL: produce requests already on the wire still reach the broker,
        but their acknowledgements are never read and no reply is ever sent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGSTOP)
        time.sleep(frozen_s)
        self.sigkill()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period: used at teardown."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.sigkill()

    def restart(self, *, wait: bool = True) -> None:
        self.sigkill()
        self.start(wait=wait)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
