"""A private Kafka broker or PostgreSQL for one fault test, so the shared stack is never touched.

`services.stack` reads its ports and directory from the environment (``OPSLEDGER_STACK_*``) on
every call; a `PrivateStack` sets those only around its own calls, with a directory and ports
nobody else uses.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from services import stack
from services.common.migrate import upgrade
from services.devtools.procs import free_port
from services.stack.manager import PartName


class PrivateStack:
    """One part (kafka or postgres) of a second stack, started, killed and restarted on demand."""

    def __init__(self, part: PartName, home: Path) -> None:
        self.part = part
        self.home = home
        self.port = free_port()
        self.env = {
            "OPSLEDGER_STACK_DIR": str(home),
            "OPSLEDGER_STACK_KAFKA_PORT": str(self.port if part == "kafka" else free_port()),
            "OPSLEDGER_STACK_KAFKA_CONTROLLER_PORT": str(free_port()),
            "OPSLEDGER_STACK_PG_PORT": str(self.port if part == "postgres" else free_port()),
            "OPSLEDGER_STACK_KAFKA_HEAP": "-Xms128m -Xmx384m",
        }

    @contextlib.contextmanager
    def _scoped(self) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    @property
    def address(self) -> str:
        """Kafka bootstrap, or the PostgreSQL DSN."""
        if self.part == "kafka":
            return f"127.0.0.1:{self.port}"
        return f"postgresql://opsledger@127.0.0.1:{self.port}/opsledger"

    def start(self) -> float:
        """Start (or restart) the part and wait until it answers; returns the seconds it took."""
        started = time.monotonic()
        with self._scoped():
            stack.start_part(self.part, say=lambda _: None)
        if self.part == "postgres":
            upgrade(self.address)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: a crash, no controlled shutdown."""
        with self._scoped():
            stack.stop_part(self.part, kill=True)

    def stop(self) -> None:
        """Graceful stop (PostgreSQL: fast shutdown, clients disconnected)."""
        with self._scoped():
            stack.stop_part(self.part)

    def pid(self) -> int | None:
        with self._scoped():
            return stack.pid_of(self.part)
