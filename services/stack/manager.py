"""Start, check and stop the local stack: the API behind `opsledger stack` and the tests.

A part named by ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` (or their ``OPSLEDGER_`` forms)
with an address other than the local one is *external*: nothing is started for it, it is
only checked. Likewise the token issuer: ``OPSLEDGER_OIDC_ISSUER`` naming another issuer than
the local development one means none is started.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from services.stack.issuer import IssuerPart
from services.stack.kafka import KafkaPart
from services.stack.postgres import PostgresPart, _select_one
from services.stack.procs import StackError, locked, port_in_use, read_pid, stop, tail
from services.stack.settings import StackSettings

# "kafka" (the single broker), "kafka-1".."kafka-N" (the nodes of a cluster), "postgres", or
# "issuer" (the development token issuer).
PartName = str
Part = KafkaPart | PostgresPart | IssuerPart
Say = Callable[[str], None]
T = TypeVar("T")
LOG_TAIL_LINES = 40


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StackInfo:
    """Where the stack answers, and which parts this call started (and so may stop)."""

    kafka_bootstrap: str
    database_url: str
    started: set[str] = field(default_factory=set)
    issuer: str | None = None  # the token issuer the services trust (None: not configured)

    def env(self) -> dict[str, str]:
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap, "DATABASE_URL": self.database_url}
        if self.issuer is not None:
            env["OPSLEDGER_OIDC_ISSUER"] = self.issuer
        return env


@dataclass(frozen=True)
class PartStatus:
    part: str
    pid: int | None
    address: str
    healthy: bool
    external: bool
    detail: str = ""

    @property
    def port(self) -> int | None:
        """The port the part answers on (the first one, for an external list of brokers)."""
        first = self.address.split(",")[0]
        if "://" in first:  # a DSN: postgresql://user@host:port/db
            first = first.split("@")[-1].split("/")[0]
        host, _, port = first.rpartition(":")
        return int(port) if host and port.isdigit() else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.part,
            "pid": self.pid,
            "address": self.address,
            "port": self.port,
            "healthy": self.healthy,
            "external": self.external,
            "detail": self.detail,
        }


def settings() -> StackSettings:
    return StackSettings()


def external_kafka(s: StackSettings | None = None) -> str | None:
    """The Kafka named in the environment when it is not this stack's (either layout: an
    address exported before `up --brokers N` switched layouts is still ours)."""
    s = s or settings()
    value = _external("", "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
    ours = {
        f"{s.host}:{s.kafka_port}",
        *(s.model_copy(update={"brokers": n}).kafka_bootstrap for n in {3, s.kafka_nodes}),
    }
    return None if value in ours else value


def external_database(s: StackSettings | None = None) -> str | None:
    s = s or settings()
    return _external(s.database_url, "OPSLEDGER_DATABASE_URL", "DATABASE_URL")


def registrar_env(database_url: str, s: StackSettings | None = None) -> dict[str, str]:
    """The query service's registrar URL (admins create and close operations over HTTP as
    ``opsledger_registrar``), when the stack gave its PostgreSQL the service roles: `up` does
    when it migrates a local database; an external database's roles are its administrator's."""
    s = s or settings()
    if external_database(s) is not None or not s.migrate:
        return {}
    from services.stack.roles import REGISTRAR, role_url  # roles needs asyncpg: only here

    return {"OPSLEDGER_QUERY_OPERATIONS_DATABASE_URL": role_url(database_url, REGISTRAR)}


def _external(local: str, *names: str) -> str | None:
    for name in names:  # same precedence as CommonSettings
        value = os.environ.get(name)
        if value:
            return None if value == local else value
    return None


def kafka_names(s: StackSettings) -> list[PartName]:
    """The Kafka parts of the stack as it is configured now: one broker, or N nodes."""
    nodes = s.kafka_nodes
    return ["kafka"] if nodes == 1 else [f"kafka-{n}" for n in range(1, nodes + 1)]


def external_issuer(s: StackSettings | None = None) -> str | None:
    """The identity provider named by ``OPSLEDGER_OIDC_ISSUER``, unless it is the local one."""
    s = s or settings()
    return _external(s.issuer_url, "OPSLEDGER_OIDC_ISSUER")


def part_names(s: StackSettings) -> list[PartName]:
    return [*kafka_names(s), "postgres", "issuer"]


def _part(name: PartName, s: StackSettings) -> Part:
    if name == "postgres":
        return PostgresPart(s)
    if name == "issuer":
        return IssuerPart(s)
    if name == "kafka":
        return KafkaPart(s)
    prefix, _, node = name.partition("-")
    if prefix != "kafka" or not node.isdigit() or not 1 <= int(node) <= s.kafka_nodes:
        raise StackError(f"no part {name!r} in this stack (parts: {', '.join(part_names(s))})")
    return KafkaPart(s, int(node), s.kafka_nodes)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, even when called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=worker, name="opsledger-stack")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def _probe_kafka(bootstrap: str, timeout_s: float) -> None:
    s = settings()
    part = KafkaPart(s)
    part.address = bootstrap
    await part.probe(timeout_s)


def _choose_brokers(s: StackSettings, brokers: int, say: Say) -> StackSettings:
    """Record how many Kafka nodes `up` runs; refuse to switch while the other layout runs."""
    current = s.kafka_nodes
    if brokers != current:
        running = [n for n in kafka_names(s) if _alive(_part(n, s))]
        if running:
            raise StackError(
                f"the stack runs {current} broker(s) ({', '.join(running)}); "
                f"`opsledger stack down` first to run {brokers}"
            )
    s.dir.mkdir(parents=True, exist_ok=True)
    if brokers == 1:
        s.cluster_file.unlink(missing_ok=True)
    else:
        s.cluster_file.write_text(json.dumps({"brokers": brokers}))
        if brokers != current:
            say(f"kafka: a cluster of {brokers} brokers (replication {min(3, brokers)}, "
                f"min.insync.replicas {max(1, min(3, brokers) - 1)})")  # fmt: skip
    return s.model_copy(update={"brokers": brokers})


def _alive(part: Part) -> bool:
    record = read_pid(part.pid_file)
    return record is not None and record.alive()


async def _ready(part: Part, timeout_s: float) -> None:
    if isinstance(part, PostgresPart):
        await part.ensure_database(timeout_s)
    await part.probe(timeout_s)


def _wait_ready(part: Part, s: StackSettings, started: float) -> None:
    """Poll until the part answers; fail with its log tail if it exits or the bound passes."""
    deadline = started + s.ready_timeout_s
    last_error = "no answer yet"
    while True:
        record = read_pid(part.pid_file)
        if record is None or not record.alive():
            raise StackError(
                f"{part.name} exited during start-up (log {part.log}):\n"
                f"{tail(part.log, LOG_TAIL_LINES, since_start=True)}"
            )
        remaining = deadline - time.monotonic()
        try:
            _run(_ready(part, max(1.0, min(5.0, remaining))))
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise StackError(
                f"{part.name} did not answer at {part.address} within "
                f"{s.ready_timeout_s:.0f} s ({last_error}); log {part.log}:\n"
                f"{tail(part.log, LOG_TAIL_LINES, since_start=True)}"
            )
        time.sleep(0.5)


def _start_parts(names: list[PartName], s: StackSettings, say: Say) -> set[str]:
    """Start the named local parts that are not running; return the ones this call started."""
    parts = [_part(n, s) for n in names]
    to_start = []
    for part in parts:
        record = read_pid(part.pid_file)
        if record is not None and record.alive():
            say(f"{part.name}: already running (pid {record.pid}) at {part.address}")
            continue
        to_start.append(part)
    # Check every port before starting anything, so a clash fails fast and names the port.
    for part in to_start:
        host = part.host if isinstance(part, KafkaPart) else s.host
        for port, what in part.ports:
            if port_in_use(host, port):
                raise StackError(
                    f"port {port} on {host} ({what}) is already in use by another process; "
                    f"free it or choose another port (OPSLEDGER_STACK_*_PORT)"
                )
    for part in to_start:
        part.prepare(say)
    launched: list[tuple[Part, float]] = []
    for part in to_start:
        say(f"{part.name}: starting at {part.address}")
        part.launch()
        launched.append((part, time.monotonic()))
    for part in parts:
        if part not in to_start:
            _wait_ready(part, s, time.monotonic())
    for part, started_at in launched:
        try:
            _wait_ready(part, s, started_at)
        except StackError:
            _stop_part(part, s)  # do not leave a half-started server behind
            raise
        say(f"{part.name}: ready in {time.monotonic() - started_at:.1f} s")
    return {p.name for p in to_start}


def _migrate(database_url: str, say: Say) -> None:
    try:
        module = importlib.import_module("services.common.migrate")
    except ModuleNotFoundError as exc:
        if exc.name != "services.common.migrate":
            raise
        say("postgres: note: services.common.migrate not found, no migrations applied")
        return
    try:
        module.upgrade(database_url)
    except Exception as exc:
        lines = str(exc).strip().splitlines() or [""]
        raise StackError(f"migrations failed on {database_url}: {type(exc).__name__}: "
                         f"{lines[0]}") from exc  # fmt: skip
    say("postgres: migrations applied")


def _grant(database_url: str, say: Say) -> None:
    from services.stack import roles  # noqa: PLC0415 - needs asyncpg, like the migrations

    try:
        _run(roles.apply(database_url))
    except Exception as exc:
        raise StackError(f"service roles and grants failed on {database_url}: {exc}") from exc
    say("postgres: service roles and grants applied (deploy/postgres/grants.sql)")


def ensure_up(
    say: Say = _stderr, *, migrate: bool | None = None, brokers: int | None = None
) -> StackInfo:
    """Start whatever local part is not running, wait until all answer, apply migrations.

    ``brokers`` chooses one broker or a cluster of N (kept until `down`); None keeps the
    current choice.
    """
    s = settings()
    with locked(s.dir / "stack.lock"):
        if brokers is not None and external_kafka(s) is None:
            s = _choose_brokers(s, brokers, say)
        ext_kafka, ext_db = external_kafka(s), external_database(s)
        ext_issuer = external_issuer(s)
        local: list[PartName] = []
        if ext_kafka is None:
            local.extend(kafka_names(s))
        if ext_db is None:
            local.append("postgres")
        if ext_issuer is None:
            local.append("issuer")
        started = _start_parts(local, s, say)
        if ext_kafka is not None:
            _check_external("kafka", ext_kafka, lambda t: _probe_kafka(ext_kafka, t), say)
        if ext_db is not None:
            _check_external("postgres", ext_db, lambda t: _select_one(ext_db, t), say)
        info = StackInfo(
            ext_kafka or s.kafka_bootstrap,
            ext_db or s.database_url,
            started,
            issuer=ext_issuer or s.issuer_url,
        )
        if s.migrate if migrate is None else migrate:
            _migrate(info.database_url, say)
            if ext_db is None:  # an external database's roles are its administrator's
                _grant(info.database_url, say)
    return info


def _check_external(
    name: str, address: str, probe: Callable[[float], Coroutine[Any, Any, None]], say: Say
) -> None:
    try:
        _run(asyncio.wait_for(probe(10.0), 15.0))
    except Exception as exc:
        raise StackError(f"{name}: external server {address} does not answer: {exc}") from exc
    say(f"{name}: external server at {address} answers (nothing started for it)")


def _stop_part(part: Part, s: StackSettings, *, kill: bool = False) -> bool:
    """Stop the process our pid file names; True when one was running."""
    import signal

    record = read_pid(part.pid_file)
    was_running = record is not None and record.alive()
    if record is not None:
        sig = signal.SIGKILL if kill else part.stop_signal
        if not stop(record, sig=sig, timeout_s=s.stop_timeout_s):
            raise StackError(f"{part.name} (pid {record.pid}) survived SIGKILL")
    part.pid_file.unlink(missing_ok=True)
    return was_running


def down(only: set[str] | None = None, say: Say = _stderr) -> set[str]:
    """Stop the local parts (all, or those in `only`) that `up` started; return the stopped.

    The nodes of a cluster are stopped together: one at a time, the last would wait for a
    controller quorum that is already gone.
    """
    s = settings()
    stopped: set[str] = set()
    with locked(s.dir / "stack.lock"):
        names = [n for n in part_names(s) if only is None or n in only]
        kafka = [n for n in names if n.startswith("kafka")]
        if len(kafka) > 1:
            stopped |= _stop_together([_part(n, s) for n in kafka], s, say)
            names = [n for n in names if n not in kafka]
        for name in names:
            part = _part(name, s)
            if _stop_part(part, s):
                stopped.add(name)
                say(f"{name}: stopped")
        if only is None:
            s.cluster_file.unlink(missing_ok=True)  # the next `up` is one broker again
    return stopped


def _stop_together(parts: list[Part], s: StackSettings, say: Say) -> set[str]:
    import signal

    running = []
    for part in parts:
        record = read_pid(part.pid_file)
        if record is not None and record.alive():
            os.kill(record.pid, part.stop_signal)
            running.append((part, record))
        else:
            part.pid_file.unlink(missing_ok=True)
    for part, record in running:
        if not stop(record, sig=signal.SIGTERM, timeout_s=s.stop_timeout_s):
            raise StackError(f"{part.name} (pid {record.pid}) survived SIGKILL")
        part.pid_file.unlink(missing_ok=True)
        say(f"{part.name}: stopped")
    return {part.name for part, _ in running}


def status() -> list[PartStatus]:
    """Each part's pid, address and whether it answers right now."""
    s = settings()
    result = []
    ext_kafka = external_kafka(s)
    names = (["kafka"] if ext_kafka is not None else kafka_names(s)) + ["postgres", "issuer"]
    for name in names:
        is_kafka = name.startswith("kafka")
        if is_kafka:
            ext = ext_kafka
        else:
            ext = external_issuer(s) if name == "issuer" else external_database(s)
        part = _part(name, s)
        pid = None
        if ext is None:
            record = read_pid(part.pid_file)
            pid = record.pid if record is not None and record.alive() else None
        address = ext or part.address
        try:
            if is_kafka and ext is not None:
                _run(asyncio.wait_for(_probe_kafka(ext, 3.0), 5.0))
            elif is_kafka:
                _run(asyncio.wait_for(part.probe(3.0), 5.0))  # this node, by its own address
            elif isinstance(part, IssuerPart):
                part.address = ext or part.address
                _run(asyncio.wait_for(part.probe(3.0), 5.0))
            else:
                _run(_select_one(ext or s.database_url, 3.0))
            healthy, detail = True, ""
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            healthy, detail = False, f"{type(exc).__name__}: {exc}"[:200]
        if ext is None and pid is None:
            detail = "answers, but not a process of this stack" if healthy else "not running"
            healthy = False
        result.append(PartStatus(name, pid, address, healthy, ext is not None, detail))
    return result


# -- single parts, for fault-injection tests ---------------------------------------------


def start_part(name: PartName, say: Say = _stderr) -> bool:
    """Start one local part if it is not running and wait until it answers."""
    return bool(start_parts([name], say))


def start_parts(names: list[PartName], say: Say = _stderr) -> set[str]:
    """Start the named parts that are not running, all at once (the nodes of a cluster need
    each other to answer), and wait until every one answers; return the ones started."""
    s = settings()
    with locked(s.dir / "stack.lock"):
        return _start_parts(names, s, say)


def stop_part(name: PartName, *, kill: bool = False) -> bool:
    """Stop one local part: gracefully, or with SIGKILL (a crash) when `kill`."""
    s = settings()
    with locked(s.dir / "stack.lock"):
        return _stop_part(_part(name, s), s, kill=kill)


def kill_kafka() -> bool:
    """SIGKILL the broker (a crash: no controlled shutdown)."""
    return stop_part("kafka", kill=True)


def stop_kafka() -> bool:
    return stop_part("kafka")


def start_kafka() -> bool:
    return start_part("kafka")


def stop_postgres() -> bool:
    """Fast shutdown of PostgreSQL (clients are disconnected)."""
    return stop_part("postgres")


def kill_postgres() -> bool:
    return stop_part("postgres", kill=True)


def start_postgres() -> bool:
    return start_part("postgres")


def part_log(name: PartName, s: StackSettings | None = None) -> Path:
    """The log file of a part."""
    return _part(name, s or settings()).log


def pid_of(name: PartName) -> int | None:
    """The live pid of a local part, or None."""
    record = read_pid(_part(name, settings()).pid_file)
    return record.pid if record is not None and record.alive() else None
