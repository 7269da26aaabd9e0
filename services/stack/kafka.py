"""The local Kafka: Maven Central jars, one KRaft node (or a cluster of them), run with `java`."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from string import Template

from services.stack.procs import PidRecord, StackError, spawn, write_pid
from services.stack.settings import StackSettings, repo_root

Say = Callable[[str], None]
MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"


class KafkaPart:
    """One broker+controller node: the single broker (``<stack dir>/kafka``) or node ``n`` of a
    cluster (``<stack dir>/kafka-n``, its own loopback address, ports and process)."""

    stop_signal = signal.SIGTERM  # controlled shutdown

    def __init__(self, settings: StackSettings, node: int | None = None, nodes: int = 1) -> None:
        self.s = settings
        self.node = node
        self.nodes = nodes
        if node is None:
            self.name = "kafka"
            self.host, self.port = settings.host, settings.kafka_port
            self.controller_port = settings.controller_port
        else:
            self.name = f"kafka-{node}"
            self.host, self.port = settings.node_host(node), settings.node_port(node)
            self.controller_port = settings.node_controller_port(node)
        self.node_id = node or 1
        self.home = settings.dir / self.name
        self.data_dir = self.home / "data"
        self.config = self.home / "server.properties"
        self.log = self.home / "kafka.log"
        self.pid_file = self.home / "kafka.pid"
        self.address = f"{self.host}:{self.port}"

    @property
    def gid(self) -> int | None:
        """A group id of this node's own, so packet filters can tell its traffic apart
        (`meta skgid`): only for cluster nodes, and only when we may set it (root)."""
        if self.node is None or os.geteuid() != 0:
            return None
        return 1_000_000 + self.port

    @property
    def ports(self) -> list[tuple[int, str]]:
        return [
            (self.port, f"{self.name} PLAINTEXT listener"),
            (self.controller_port, f"{self.name} CONTROLLER listener"),
        ]

    def prepare(self, say: Say) -> None:
        """Jars in the cache, config rendered, storage formatted: everything but the start."""
        self.home.mkdir(parents=True, exist_ok=True)
        ensure_jars(self.s, say)
        self._render_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format(say)

    def launch(self) -> PidRecord:
        proc = spawn(
            self._java(MAIN_CLASS, str(self.config), heap=self.s.kafka_heap.split()),
            log=self.log,
            cwd=self.home,
            group=self.gid,
        )
        return write_pid(self.pid_file, proc.pid)

    async def probe(self, timeout_s: float = 5.0) -> None:
        """Raise unless the broker answers a metadata request naming itself among the brokers."""
        from aiokafka.client import AIOKafkaClient

        host, _, port = self.address.split(",")[0].rpartition(":")
        try:  # a refused connection is the common "not yet": say so without aiokafka's log noise
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout_s)
        except (OSError, TimeoutError) as exc:
            raise StackError(f"no listener at {self.address}: {exc}") from None
        writer.close()
        await writer.wait_closed()
        timeout_ms = int(timeout_s * 1000)
        client = AIOKafkaClient(
            bootstrap_servers=self.address,
            request_timeout_ms=timeout_ms,
            connections_max_idle_ms=timeout_ms + 1000,
            metadata_max_age_ms=timeout_ms,
        )
        quiet = _DropFor(self.address)
        loggers = [
            logging.getLogger(name) for name in ("aiokafka", "aiokafka.client", "aiokafka.conn")
        ]
        for logger in loggers:  # a broker still starting is expected here, not worth a log line
            logger.addFilter(quiet)
        try:
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
            if not metadata.brokers():
                raise StackError("the broker answered with no brokers yet")
            if self.node is not None and self.node_id not in {b.nodeId for b in metadata.brokers()}:
                raise StackError(f"node {self.node_id} is not a registered broker yet")
        finally:
            await client.close()
            for logger in loggers:
                logger.removeFilter(quiet)

    # -- internals ------------------------------------------------------------------------

    def _java(self, main: str, *args: str, heap: list[str]) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise StackError("`java` (17+) is not on PATH; the local Kafka broker needs it")
        log4j = repo_root() / "deploy" / "local" / "kafka" / "log4j2.properties"
        return [
            java, *heap, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.home}",
            "-cp", f"{self.s.kafka_libs}/*", main, *args,
        ]  # fmt: skip

    def _render_config(self) -> None:
        local = repo_root() / "deploy/local/kafka"
        if self.node is None:
            text = Template((local / "server.properties").read_text()).substitute(
                host=self.s.host,
                port=self.s.kafka_port,
                controller_port=self.s.controller_port,
                data_dir=self.data_dir,
            )
        else:
            voters = ",".join(
                f"{n}@{self.s.node_host(n)}:{self.s.node_controller_port(n)}"
                for n in range(1, self.nodes + 1)
            )
            replication = min(3, self.nodes)
            text = Template((local / "cluster.properties").read_text()).substitute(
                node_id=self.node_id,
                voters=voters,
                host=self.host,
                port=self.port,
                controller_port=self.controller_port,
                data_dir=self.data_dir,
                replication=replication,
                min_insync=max(1, replication - 1),
            )
        if not self.config.exists() or self.config.read_text() != text:
            self.config.write_text(text)

    def _format(self, say: Say) -> None:
        if self.node is None:
            cluster_id, quorum = _cluster_id(), ["--standalone"]
        else:  # every node of a cluster shares one id; the voters are in the config
            cluster_id, quorum = self._shared_cluster_id(), []
        say(f"{self.name}: formatting storage in {self.data_dir} (cluster id {cluster_id})")
        argv = self._java(STORAGE_TOOL, "format", *quorum, "-t", cluster_id,
                          "-c", str(self.config), heap=["-Xmx256m"])  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        if result.returncode != 0:
            raise StackError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")

    def _shared_cluster_id(self) -> str:
        path = self.s.dir / "kafka-cluster.id"
        try:
            known = json.loads(path.read_text())
            if known.get("nodes") == self.nodes:
                return str(known["id"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        cluster_id = _cluster_id()
        path.write_text(json.dumps({"id": cluster_id, "nodes": self.nodes}))
        return cluster_id


class _DropFor(logging.Filter):
    """Drops aiokafka's connection complaints about one address (used while probing it)."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def filter(self, record: logging.LogRecord) -> bool:
        return self.address not in record.getMessage()


def _cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding, not starting '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def ensure_jars(settings: StackSettings, say: Say) -> Path:
    """Resolve the broker's jars into the cache with Maven, once; later runs reuse them."""
    libs = settings.kafka_libs
    marker = libs / ".complete"
    if marker.exists():
        return libs
    wanted = f"kafka_2.13-{settings.kafka_version}.jar"
    if (libs / wanted).exists() and any(libs.glob("log4j-slf4j-impl-*.jar")):
        marker.touch()  # filled by an earlier run that predates the marker
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("`mvn` is not on PATH; it fetches the Kafka jars on first use")
    staging = libs.with_name(f"libs.partial-{uuid.uuid4().hex[:8]}")
    say(f"kafka: first use, fetching Kafka {settings.kafka_version} jars from Maven Central "
        f"into {libs} (about a minute)...")  # fmt: skip
    started = time.monotonic()
    argv = [mvn, "-q", "-B", "-f", str(settings.kafka_pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(f"mvn could not fetch the Kafka jars:\n{result.stdout}\n{result.stderr}")
    (staging / ".complete").touch()
    if libs.exists():
        shutil.rmtree(libs)
    staging.rename(libs)
    count = len(list(libs.glob("*.jar")))
    say(f"kafka: {count} jars cached in {time.monotonic() - started:.0f} s")
    return libs
