"""Processes the stack starts: pid files, liveness, ports, signals, log tails.

A pid file records the pid *and* the process start time, so a recycled pid is never mistaken
for ours and `down` never signals a stranger.  Nothing here looks processes up by name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]

START_MARK = "==== opsledger stack: starting"


class StackError(RuntimeError):
    """A part of the stack could not be started, reached or stopped."""


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None when it has exited (or was reused).

        A dying multi-threaded server (the JVM) shows as a zombie while its other threads
        still hold its sockets, so it only counts as gone once it has been reaped, or is a
        zombie with no thread left.
        """
        exited = _reap(self.pid)
        if exited:
            return None
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE and _threads(self.pid) <= 1:
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return proc

    def alive(self) -> bool:
        return self.process() is not None


# Servers this process started. Holding the Popen keeps it from being collected while the
# server runs (its __del__ would warn "subprocess is still running") and lets us reap it.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> bool:
    """Collect our own child if it has fully exited; True when it has (and is gone)."""
    child = _CHILDREN.get(pid)
    if child is None:
        return False
    if child.poll() is None:  # waitpid succeeds only once every thread has exited
        return False
    del _CHILDREN[pid]
    return True


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def read_pid(path: Path) -> PidRecord | None:
    try:
        data = json.loads(path.read_text())
        return PidRecord(int(data["pid"]), float(data["create_time"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_pid(path: Path, pid: int) -> PidRecord:
    record = PidRecord(pid, psutil.Process(pid).create_time())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": record.pid, "create_time": record.create_time}))
    tmp.replace(path)
    return record


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    group: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running server detached from our terminal, output appended to `log`.

    ``user`` runs it under that account; ``group`` (root only) under that group id alone.
    """
    with log.open("ab") as out:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        out.write(f"{START_MARK} {stamp}: {' '.join(argv)}\n".encode())
        out.flush()
        child = subprocess.Popen(  # noqa: S603 - argv is built by us, never from user input
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # its own process group: ^C in our shell does not reach it
            user=user,
            group=group if group is not None else _group_of(user),
            extra_groups=[] if user is not None or group is not None else None,
        )
    _CHILDREN[child.pid] = child
    return child


def _group_of(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid


def stop(record: PidRecord, *, sig: int, timeout_s: float) -> bool:
    """Send `sig`, wait up to `timeout_s`, then SIGKILL the process group; True when it is gone."""
    proc = record.process()
    if proc is None:
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, sig)
    if _wait_gone(record, timeout_s):
        return True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGKILL)  # the group is the server and its own children
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGKILL)
    return _wait_gone(record, 10.0)


def _wait_gone(record: PidRecord, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not record.alive():
            return True
        time.sleep(0.1)
    return not record.alive()


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (so our server could not bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def tail(path: Path, lines: int, *, since_start: bool = False) -> str:
    """The last `lines` lines of a log file ('' when it does not exist), or of its last run."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    all_lines = data.splitlines()
    if since_start:
        marks = [i for i, line in enumerate(all_lines) if line.startswith(START_MARK)]
        if marks:
            all_lines = all_lines[marks[-1] + 1 :]
    return "\n".join(all_lines[-lines:])


@contextlib.contextmanager
def locked(path: Path, timeout_s: float = 300.0) -> Iterator[None]:
    """An exclusive lock between concurrent `stack up`/`down` runs on the same directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(f"another stack command holds {path}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
