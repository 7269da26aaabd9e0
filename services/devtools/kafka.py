"""A throwaway single-node Kafka for tests that stop the broker (never the shared one)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from services.devtools.procs import free_port
from services.stack.kafka import KafkaPart
from services.stack.procs import PidRecord, stop
from services.stack.settings import StackSettings


class PrivateKafka:
    """Kafka on its own ports and directory, which a test may SIGKILL and start again."""

    def __init__(self, home: Path) -> None:
        self.settings = StackSettings(
            dir=home,
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            kafka_heap="-Xms128m -Xmx384m",
        )
        self.part = KafkaPart(self.settings)
        self.record: PidRecord | None = None

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    async def start(self, timeout_s: float = 90.0) -> None:
        """Launch the broker and wait until it answers (bounded by ``timeout_s``)."""
        await asyncio.to_thread(self.part.prepare, lambda _: None)
        self.record = await asyncio.to_thread(self.part.launch)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await self.part.probe(2.0)
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise AssertionError(f"private broker did not start: {exc!r}") from exc
                await asyncio.sleep(0.5)

    async def kill(self) -> None:
        """SIGKILL: a crash, no controlled shutdown."""
        if self.record is not None:
            assert await asyncio.to_thread(stop, self.record, sig=signal.SIGKILL, timeout_s=10)
            self.record = None
        self.part.pid_file.unlink(missing_ok=True)
