"""Shared bench helpers: the local stack, services as subprocesses, Kafka's own tools, the machine.

Every bench run uses its own topic, consumer group and operation ids (from ``run_id``), so it
never mixes with the shared stack's other users; the services it starts listen on free ports
and are stopped when the ``with`` block ends, whatever happens inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common.settings import CommonSettings
from services.devtools.procs import ServiceProcess
from services.stack.settings import StackSettings

QUICK = os.environ.get("OPSLEDGER_BENCH_QUICK", "").lower() in {"1", "true", "yes"}
# A directory: run ingest and the aggregators under pyinstrument, one session file each.
PROFILE_DIR = os.environ.get("OPSLEDGER_BENCH_PROFILE", "")


def say(message: str) -> None:
    """Progress to stderr (stdout carries the results table)."""
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def new_run_id() -> str:
    """A short random id naming this run's topic, group and operations."""
    return uuid.uuid4().hex[:8]


def ensure_stack() -> CommonSettings:
    """Start the local Kafka and PostgreSQL if they are not running; the settings to reach them."""
    from services.stack import ensure_up

    info = ensure_up(say=say)
    # The services the benchmarks start are child processes: they must reach this stack (its
    # ports may be set by OPSLEDGER_STACK_*), not the defaults, so its addresses go to the env.
    os.environ.update(info.env())
    return CommonSettings()


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


# -- services as subprocesses ------------------------------------------------------------------


@dataclass
class Pipeline:
    """Ingest, N aggregators and query, started for one run on a private topic and group."""

    run_id: str
    settings: CommonSettings
    aggregators: int = 1
    query_env: Mapping[str, str] = field(default_factory=dict)
    ingest_url: str = ""
    query_url: str = ""
    # a second query service with default settings, when asked for (``dashboard=True``)
    dashboard: bool = False
    dashboard_url: str = ""
    topic: str = ""
    group: str = ""
    procs: list[ServiceProcess] = field(default_factory=list)
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bench-e2e-")))

    def env(self) -> dict[str, str]:
        """The environment every service of this run shares."""
        return {
            **os.environ,
            "OPSLEDGER_TOPIC": self.topic,
            "OPSLEDGER_DLQ_TOPIC": f"{self.topic}.dlq",
            "OPSLEDGER_CONSUMER_GROUP": self.group,
            "OPSLEDGER_LOG_LEVEL": "WARNING",
        }

    def start(self) -> None:
        """Start every service and wait until each answers its health check."""
        self.topic = self.group = f"bench-e2e-{self.run_id}"
        self.ingest_url = self._spawn("ingest").url
        for n in range(self.aggregators):
            data_dir = {"OPSLEDGER_AGGREGATOR_DATA_DIR": str(self.work / f"faust-{n}")}
            self._spawn("aggregator", data_dir, label=f"aggregator-{n}")
        self.query_url = self._spawn("query", self.query_env).url
        if self.dashboard:
            self.dashboard_url = self._spawn("query", label="query-default").url

    def _spawn(
        self, service: str, extra: Mapping[str, str] | None = None, label: str | None = None
    ) -> ServiceProcess:
        label = label or service
        python_args: list[str] = []
        if PROFILE_DIR and service in {"ingest", "aggregator"}:
            Path(PROFILE_DIR).mkdir(parents=True, exist_ok=True)
            out = Path(PROFILE_DIR) / f"{label}-{self.run_id}.pyisession"
            python_args = ["-m", "pyinstrument", "-r", "pyisession", "-o", str(out), "-m"]
        proc = ServiceProcess(
            service,
            {**self.env(), **(extra or {})},
            self.work,
            label=label,
            health_path="/healthz" if service == "aggregator" else "/readyz",
            python_args=python_args,
        )
        self.procs.append(proc)
        proc.start()
        return proc

    def pid(self, label: str) -> int:
        """Process id of the service started under ``label``."""
        return next(p.pid for p in self.procs if p.label == label)

    def stop(self) -> None:
        """Stop every started service (newest first), drop the private topics and files."""
        # under pyinstrument, SIGINT lets the service stop cleanly and the profile save
        for proc in reversed(self.procs):
            proc.stop(signal.SIGINT if PROFILE_DIR else signal.SIGTERM)
        self.procs.clear()
        if self.topic:
            with contextlib.suppress(Exception):
                delete_topics(
                    self.settings.kafka_bootstrap_servers, [self.topic, f"{self.topic}.dlq"]
                )
        shutil.rmtree(self.work, ignore_errors=True)


@contextlib.contextmanager
def pipeline(
    settings: CommonSettings,
    run_id: str,
    *,
    aggregators: int = 1,
    query_env: Mapping[str, str] | None = None,
    dashboard: bool = False,
) -> Iterator[Pipeline]:
    """Ingest, ``aggregators`` aggregator processes and query for the duration of the block."""
    p = Pipeline(run_id, settings, aggregators, dict(query_env or {}), dashboard=dashboard)
    try:
        p.start()
        yield p
    finally:
        p.stop()


# -- Kafka ---------------------------------------------------------------------------------------


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Delete topics (missing ones are ignored by the broker's answer)."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()

    asyncio.run(go())


def create_topic(bootstrap: str, topic: str, partitions: int = 12) -> None:
    """Create a topic with ``partitions`` partitions, replication 1."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def go() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1)])
        finally:
            await admin.close()

    asyncio.run(go())


def kafka_tool(main: str, *args: str, timeout_s: float = 300) -> str:
    """Run one of Kafka's own tools (org.apache.kafka.tools.*) from the stack's jars; stdout."""
    libs = StackSettings().kafka_libs
    argv = ["java", "-Xmx512m", "-cp", f"{libs}/*", f"org.apache.kafka.tools.{main}", *args]
    done = subprocess.run(  # noqa: S603 - fixed argv
        argv, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{main} failed ({done.returncode}): {done.stderr[-800:]}")
    return done.stdout


def producer_perf(bootstrap: str, topic: str, record_size: int, records: int) -> dict[str, Any]:
    """Kafka's ProducerPerformance (acks=all, idempotent, like ingest) for one record size."""
    out = kafka_tool(
        "ProducerPerformance", "--topic", topic, "--num-records", str(records),
        "--record-size", str(record_size), "--throughput", "-1",
        "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all",
        "enable.idempotence=true", "linger.ms=2", "batch.size=1048576",
        "max.request.size=2097152",
    )  # fmt: skip
    summary = [line for line in out.splitlines() if "records sent" in line][-1]
    match = re.search(
        r"([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency.*?"
        r"(\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th",
        summary,
    )
    if match is None:
        raise RuntimeError(f"unexpected ProducerPerformance output: {summary}")
    rps, mbps, _avg, p50, _p95, p99 = match.groups()
    return {
        "record_size": record_size,
        "records": records,
        "records_per_s": round(float(rps)),
        "mb_per_s": float(mbps),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
    }


def consumer_perf(bootstrap: str, topic: str, records: int, record_size: int) -> dict[str, Any]:
    """Kafka's ConsumerPerformance reading ``records`` from the start of ``topic``."""
    out = kafka_tool(
        "ConsumerPerformance", "--bootstrap-server", bootstrap, "--topic", topic,
        "--messages", str(records), "--group", f"bench-perf-{new_run_id()}",
        "--timeout", "20000", "--hide-header",
    )  # fmt: skip
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
    # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
    line = [x for x in out.splitlines() if x.count(",") >= 9][-1]
    cols = [c.strip() for c in line.split(",")]
    return {
        "record_size": record_size,
        "records": int(cols[4]),
        # fetch.* excludes the group join, which a long-running consumer pays once
        "records_per_s": round(float(cols[9])),
        "mb_per_s": float(cols[8]),
        "records_per_s_incl_join": round(float(cols[5])),
    }


# -- the machine ---------------------------------------------------------------------------------


def machine_info(settings: CommonSettings | None = None) -> dict[str, Any]:
    """What the figures were measured on (CPU, memory, versions, load at the time)."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    with contextlib.suppress(Exception):
        info["kafka"] = StackSettings().kafka_version
    if settings is not None:
        with contextlib.suppress(Exception):
            info["postgresql"] = _pg_version(settings.database_url)
    with contextlib.suppress(Exception):
        info["git_commit"] = _git("rev-parse", "--short", "HEAD")
        # uncommitted product changes in the tree measured (several people work in one tree)
        info["git_dirty"] = bool(_git("status", "--porcelain", "--", "schemas", "services"))
    return info


def _git(*args: str) -> str:
    done = subprocess.run(  # noqa: S603
        ["git", *args],  # noqa: S607
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    return done.stdout.strip()


def _pg_version(dsn: str) -> str:
    import asyncpg

    async def go() -> str:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(go())
