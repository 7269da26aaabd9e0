"""A private three-broker KRaft cluster for the cluster fault tests, and what they observe.

Each node is a real `java` process with its own loopback address (127.0.0.21-23), ports, data
directory and group id (`opsledger stack up --brokers 3` builds it the same way), in a
directory and on ports nobody else uses: the shared stack is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from services import stack
from services.devtools.procs import ServiceProcess, free_port, free_port_run
from services.stack.kafka import KafkaPart
from services.stack.settings import StackSettings

from .netfault import Isolation

NODES = 3
HOSTS = [f"127.0.0.{20 + n}" for n in range(1, NODES + 1)]


class PrivateCluster:
    """Three KRaft nodes (broker + controller each) that a test may kill, stop, cut off."""

    def __init__(self, home: Path) -> None:
        self.home = home
        base = free_port_run(2 * NODES, HOSTS)
        self.env = {
            "OPSLEDGER_STACK_DIR": str(home),
            "OPSLEDGER_STACK_BROKERS": str(NODES),
            "OPSLEDGER_STACK_CLUSTER_HOSTS": ",".join(HOSTS),
            "OPSLEDGER_STACK_KAFKA_PORT": str(base),
            "OPSLEDGER_STACK_KAFKA_CONTROLLER_PORT": str(base + 1),
            "OPSLEDGER_STACK_PG_PORT": str(free_port()),
            "OPSLEDGER_STACK_KAFKA_HEAP": "-Xms128m -Xmx384m",
            # A restarted node took 40-56 s to rejoin with the box's load average at 20-29.
            "OPSLEDGER_STACK_READY_TIMEOUT_S": "180",
        }
        with self._scoped():
            s = StackSettings()
            self.nodes = {n: KafkaPart(s, n, NODES) for n in range(1, NODES + 1)}
            self.bootstrap = s.kafka_bootstrap

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

    def name(self, node: int) -> str:
        return self.nodes[node].name

    def start(self, *nodes: int) -> float:
        """Start the given nodes (default: any not running) and wait until each answers."""
        started = time.monotonic()
        names = [self.name(n) for n in (nodes or self.nodes)]
        with self._scoped():
            stack.start_parts(names, say=lambda _: None)
        return time.monotonic() - started

    def kill(self, node: int) -> None:
        """SIGKILL: a crash, no controlled shutdown."""
        with self._scoped():
            stack.stop_part(self.name(node), kill=True)

    def stop(self, node: int) -> float:
        """Graceful stop (controlled shutdown: leadership moves first); seconds it took."""
        started = time.monotonic()
        with self._scoped():
            stack.stop_part(self.name(node))
        return time.monotonic() - started

    def down(self) -> None:
        for iso in self.isolations():
            iso.heal()
        with self._scoped():
            stack.down(say=lambda _: None)

    def pid(self, node: int) -> int | None:
        with self._scoped():
            return stack.pid_of(self.name(node))

    def isolation(self, node: int) -> Isolation:
        part = self.nodes[node]
        if part.gid is None:
            raise RuntimeError("cutting a node off needs root (a group id of its own)")
        return Isolation(part.host, (part.port, part.controller_port), part.gid)

    def isolations(self) -> list[Isolation]:
        return [self.isolation(n) for n in self.nodes] if os.geteuid() == 0 else []

    async def describe(self, topic: str) -> list[dict[str, Any]]:
        """Each partition of ``topic``: partition, leader, replicas, isr (bounded, retried: a
        node that is down or cut off may be the one asked)."""
        for _ in range(4):
            with contextlib.suppress(Exception):
                return await self._describe(topic)
            await asyncio.sleep(0.5)
        return await self._describe(topic)

    async def _describe(self, topic: str) -> list[dict[str, Any]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            async with asyncio.timeout(15):
                await admin.start()
                topics = await admin.describe_topics([topic])
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await admin.close()
        return sorted(topics[0]["partitions"], key=lambda p: p["partition"])

    async def wait_in_sync(self, topic: str, timeout_s: float = 120.0) -> float:
        """Wait until every partition has all three replicas in sync; seconds it took."""
        started = time.monotonic()
        last: Any = None
        while time.monotonic() - started < timeout_s:
            with contextlib.suppress(Exception):
                last = await self.describe(topic)
                if last and all(len(p["isr"]) == NODES and p["leader"] >= 0 for p in last):
                    return time.monotonic() - started
            await asyncio.sleep(1.0)
        raise AssertionError(f"{topic} not fully in sync within {timeout_s} s: {last}")


async def busiest_leader(cluster: PrivateCluster, topic: str, ends: dict[int, int]) -> int:
    """The node leading the most records of ``topic`` (end offsets per partition)."""
    by_leader: Counter[int] = Counter()
    for p in await cluster.describe(topic):
        by_leader[p["leader"]] += ends.get(p["partition"], 0)
    return by_leader.most_common(1)[0][0]


@dataclass
class Watch:
    """What ingest and the aggregators answered on /readyz, once a second, during a fault."""

    ingest: ServiceProcess
    aggregators: list[ServiceProcess]
    seen: dict[str, Counter[str]] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> dict[str, dict[str, int]]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return {name: dict(sorted(c.items())) for name, c in self.seen.items()}

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=3.0) as client:
            while True:
                services = [("ingest", self.ingest)] + [
                    (f"aggregator:{a.port}", a) for a in self.aggregators if a.alive()
                ]
                for name, service in services:
                    try:
                        resp = await client.get(f"{service.url}/readyz")
                        answer = str(resp.status_code)
                    except httpx.HTTPError as exc:
                        answer = type(exc).__name__
                    self.seen.setdefault(name.split(":")[0], Counter())[answer] += 1
                await asyncio.sleep(1.0)


@dataclass
class FaultRun:
    """One cluster fault under load: the services, the oracle, and what was seen meanwhile."""

    kc: PrivateCluster
    topic: str
    ingest: ServiceProcess
    aggregators: list[ServiceProcess]
    spawn_aggregator: Any  # () -> ServiceProcess, started
    oracle: Any
    fault_start: float = 0.0
    fault_end: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    removed: list[ServiceProcess] = field(default_factory=list)
    _rotation: asyncio.Task[None] | None = None

    def begin(self) -> None:
        self.fault_start = time.monotonic()

    def end(self) -> None:
        self.fault_end = time.monotonic()

    def rotate_aggregators(self) -> None:
        """Now, in the background: one aggregator added, then one of the first two removed
        (SIGTERM), so the group rebalances twice while the fault lasts."""
        self._rotation = asyncio.get_running_loop().create_task(self._rotate())

    async def _rotate(self) -> None:
        began = self.since_start()
        added = await asyncio.to_thread(self.spawn_aggregator)
        self.aggregators.append(added)
        joined = self.since_start()
        leaving = self.aggregators.pop(0)
        await asyncio.to_thread(leaving.stop)
        self.removed.append(leaving)
        self.notes["aggregators"] = (
            f"+1 started at {began:.0f} s (healthy at {joined:.0f} s), "
            f"-1 stopped at {self.since_start():.0f} s"
        )

    async def rotation_done(self, timeout_s: float = 90.0) -> None:
        if self._rotation is not None:
            await asyncio.wait_for(self._rotation, timeout_s)

    def since_start(self) -> float:
        return time.monotonic() - self.fault_start

    async def ends(self) -> dict[int, int]:
        from .checker import topic_end_offsets

        return await topic_end_offsets(self.kc.bootstrap, self.topic)

    def recovery(self) -> dict[str, Any]:
        """Answers during the fault, and how long after its end ingest still refused."""
        timeline = self.oracle.fates.timeline
        after = [t for t, a in timeline if t >= self.fault_end and a in ("202", "207")]
        # "Unavailable" answers: 503, any other 5xx, or no answer at all (not the 4xx refusals
        # of the invalid events the devices send on purpose).
        refusals = [
            t for t, a in timeline if t >= self.fault_start and not a.startswith(("2", "4"))
        ]
        return {
            "fault_s": round(self.fault_end - self.fault_start, 1),
            "answers_during_fault": self.oracle.fates.answers_between(
                self.fault_start, self.fault_end
            ),
            "first_ack_after_s": round(after[0] - self.fault_end, 1) if after else None,
            "last_unavailable_after_s": round(max(0.0, refusals[-1] - self.fault_end), 1)
            if refusals
            else 0.0,
        }


async def wait_acks_after(run: FaultRun, timeout_s: float = 90.0) -> None:
    """Wait until ingest acknowledged something after the fault ended (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(t >= run.fault_end and a in ("202", "207") for t, a in run.oracle.fates.timeline):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"ingest acknowledged nothing in {timeout_s} s after the fault ended: "
        f"{run.oracle.fates.answers_between(run.fault_end, time.monotonic())}"
    )
