"""Free ports and `opsledger serve ...` subprocesses: the one copy tests and bench share.

A service runs in its own process group with its output in a log file (a file, not a pipe: a
chatty server can never block on it), so it can be stopped, SIGKILLed or frozen as a whole.
Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_run(width: int, hosts: Sequence[str] = ("127.0.0.1",)) -> int:
    """A port p such that p .. p+width-1 are all free on every one of ``hosts`` (the nodes of a
    local Kafka cluster listen on consecutive ports, each on its own loopback address)."""
    for _ in range(100):
        base = free_port()
        if base + width <= 65535 and not any(
            _taken(host, base + i) for host in hosts for i in range(width)
        ):
            return base
    raise RuntimeError(f"no run of {width} free ports found on {', '.join(hosts)}")


def _taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class ServiceProcess:
    """One ``opsledger serve <name> --port P`` process with its own environment and log file.

    ``env`` is laid over the current environment. ``python_args`` go between the interpreter and
    ``-m services.cli.main`` (e.g. a profiler's ``-m pyinstrument ... -m``: then the last one
    must be ``-m``). Usable as a context manager: started and healthy inside, stopped after.
    """

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_dir: Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        label: str | None = None,
        health_path: str = "/healthz",
        python_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.host = host
        self.port = port or free_port()
        self.env = {**os.environ, **env}
        self.label = label or name
        self.log = log_dir / f"{self.label}-{self.port}.log"
        self.health_path = health_path
        self.python_args = tuple(python_args) or ("-m",)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.label} was never started"
        return self.proc.pid

    def start(self, *, wait: bool = True, timeout_s: float = 60.0) -> None:
        """Spawn the process (its own process group); wait until its health path answers."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.label} already running"
        self.starts += 1
        argv = [sys.executable, *self.python_args, "services.cli.main", "serve", self.name]
        argv += ["--host", self.host, "--port", str(self.port)]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            log.write(f"\n==== start #{self.starts} at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(  # noqa: S603 - our own entry point, fixed argv
                argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if wait:
            self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 60.0, path: str | None = None) -> None:
        """Poll ``path`` until it answers 200; fail with the log tail if the process died."""
        path = path or self.health_path
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.label} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.label} did not answer {path} in {timeout_s} s:\n{self.tail()}")

    def sigkill(self) -> None:
        """SIGKILL the process group (a crash: no shutdown code runs) and reap it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def freeze_then_kill(self, frozen_s: float = 0.3) -> None:
        """SIGSTOP, then SIGKILL: requests already on the wire still reach their peer, but no
        answer is ever read or sent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGSTOP)
        time.sleep(frozen_s)
        self.sigkill()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
        """``sig`` to the process group, then SIGKILL after ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.sigkill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> ServiceProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
