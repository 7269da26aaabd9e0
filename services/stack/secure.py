"""The local stack in secure mode: Kafka over SASL_SSL (SCRAM), PostgreSQL over TLS only.

The same Kafka (KRaft, the cached jars) and the same PostgreSQL as the plain stack, configured
as docker-compose.yml ships them, so that the settings compose uses are proven on the real
servers: this module is the one source of those settings (tests/unit/test_deploy_compose.py
checks docker-compose.yml against `BROKER_SECURITY`, `KAFKA_CLIENT`, `DATABASE_TLS`).

Certificates and passwords come from `services.stack.certs` (under ``<dir>/certs``). Every
client authenticates: the services with their own SCRAM user and database role, each with a
password; the brokers' TLS certificate and PostgreSQL's are verified against the generated CA
(Kafka's hostname check; libpq's ``sslmode=verify-full``).

`opsledger stack secure up|env|down` runs it in ``.local/secure`` on the stack's ports (the
plain stack must be down); tests start it on free ports in a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from string import Template
from urllib.parse import quote

import httpx

from services.stack import certs
from services.stack.issuer import IssuerPart
from services.stack.kafka import STORAGE_TOOL, KafkaPart, _cluster_id
from services.stack.postgres import PostgresPart
from services.stack.procs import PidRecord, StackError, locked, port_in_use, spawn, write_pid
from services.stack.settings import StackSettings, repo_root

Say = Callable[[str], None]

KAFKA_MECHANISM = "SCRAM-SHA-512"
CLIENT_LISTENER = "INTERNAL"  # the brokers' SASL_SSL listener (compose adds HOST, the same)

# Broker properties that make every listener authenticated and encrypted. docker-compose.yml
# sets each as KAFKA_<NAME> (dots to "_", dashes to "___"), the local secure broker as is.
BROKER_SECURITY: dict[str, str] = {
    "listener.security.protocol.map": "INTERNAL:SASL_SSL,HOST:SASL_SSL,CONTROLLER:SSL",
    "inter.broker.listener.name": CLIENT_LISTENER,
    "sasl.enabled.mechanisms": KAFKA_MECHANISM,
    "sasl.mechanism.inter.broker.protocol": KAFKA_MECHANISM,
    # Controllers: mutual TLS with the brokers' certificate (SCRAM users live in the metadata
    # the controllers serve, so they cannot authenticate the controllers themselves).
    "listener.name.controller.ssl.client.auth": "required",
    "ssl.keystore.type": "PEM",
    "ssl.truststore.type": "PEM",
    "ssl.endpoint.identification.algorithm": "https",
    "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
}
# Per-deployment broker properties whose values are paths or secrets (compose: mounted files).
BROKER_FILES = ("ssl.keystore.location", "ssl.truststore.location")

# The SCRAM users formatted into the brokers' storage, and the secrets.env name of each password.
KAFKA_USERS: dict[str, str] = {
    "opsledger-broker": "KAFKA_BROKER_SCRAM_PASSWORD",
    "opsledger-ingest": "KAFKA_INGEST_SCRAM_PASSWORD",
    "opsledger-aggregator": "KAFKA_AGGREGATOR_SCRAM_PASSWORD",
    "opsledger-admin": "KAFKA_ADMIN_SCRAM_PASSWORD",
}
SERVICE_KAFKA_USER = {"ingest": "opsledger-ingest", "aggregator": "opsledger-aggregator"}

# What an opsledger process that uses Kafka is given (the user, password and CA file vary).
KAFKA_CLIENT: dict[str, str] = {
    "OPSLEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "OPSLEDGER_KAFKA_SASL_MECHANISM": KAFKA_MECHANISM,
}
KAFKA_CLIENT_PER_SERVICE = (
    "OPSLEDGER_KAFKA_SASL_USERNAME",
    "OPSLEDGER_KAFKA_SASL_PASSWORD",
    "OPSLEDGER_KAFKA_SSL_CAFILE",
)
# The DSN parameters of every database connection (plus sslrootcert=<the CA file>).
DATABASE_TLS: dict[str, str] = {"sslmode": "verify-full"}
# PostgreSQL's server settings (compose passes them with -c; the file paths vary).
POSTGRES_SERVER: dict[str, str] = {"ssl": "on", "ssl_min_protocol_version": "TLSv1.2"}
# Only TLS connections with a password: deploy/postgres/pg_hba.conf, shared with compose.
PG_HBA = "deploy/postgres/pg_hba.conf"
# The service roles and the secrets.env name of each password.
DATABASE_ROLES: dict[str, str] = {
    "opsledger_aggregator": "PG_AGGREGATOR_PASSWORD",
    "opsledger_query": "PG_QUERY_PASSWORD",
    "opsledger_auditor": "PG_AUDITOR_PASSWORD",
    "opsledger_registrar": "PG_REGISTRAR_PASSWORD",
}
SERVICE_DATABASE_ROLE = {"aggregator": "opsledger_aggregator", "query": "opsledger_query"}
# Never set by a deployment that is secure as shipped.
INSECURE_SETTINGS = (
    "OPSLEDGER_INSECURE_KAFKA_PLAINTEXT",
    "OPSLEDGER_INSECURE_DATABASE_WITHOUT_TLS",
    "OPSLEDGER_INSECURE_HTTP_ISSUER",
)


def compose_env_name(prop: str) -> str:
    """A broker property as the apache/kafka image reads it from the environment."""
    return "KAFKA_" + prop.replace("-", "___").replace(".", "_").upper()


def database_url(user: str, password: str, host: str, port: int, db: str, ca: Path) -> str:
    params = "&".join(f"{k}={v}" for k, v in {**DATABASE_TLS, "sslrootcert": str(ca)}.items())
    return f"postgresql://{user}:{quote(password, safe='')}@{host}:{port}/{db}?{params}"


class SecureKafkaPart(KafkaPart):
    """The single KRaft broker with a SASL_SSL client listener and an mTLS controller."""

    def __init__(self, settings: StackSettings, material: certs.Material) -> None:
        super().__init__(settings)
        self.material = material

    @property
    def ports(self) -> list[tuple[int, str]]:
        return [
            (self.port, "kafka SASL_SSL listener"),
            (self.controller_port, "kafka CONTROLLER (TLS) listener"),
        ]

    def properties(self) -> dict[str, str]:
        """The secure listener, on top of deploy/local/kafka/server.properties."""
        broker_password = self.material.passwords[KAFKA_USERS["opsledger-broker"]]
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="opsledger-broker" password="{broker_password}";'
        )
        return {
            "listeners": f"INTERNAL://{self.host}:{self.port},"
            f"CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"INTERNAL://{self.host}:{self.port},"
            f"CONTROLLER://{self.host}:{self.controller_port}",
            **BROKER_SECURITY,
            "ssl.keystore.location": str(self.material.kafka_keystore),
            "ssl.truststore.location": str(self.material.ca),
            "listener.name.internal.scram-sha-512.sasl.jaas.config": jaas,
        }

    def _render_config(self) -> None:
        template = (repo_root() / "deploy/local/kafka/server.properties").read_text()
        text = Template(template).substitute(
            host=self.s.host,
            port=self.s.kafka_port,
            controller_port=self.s.controller_port,
            data_dir=self.data_dir,
        )
        props = self.properties()
        kept = [line for line in text.splitlines() if line.partition("=")[0].strip() not in props]
        text = "\n".join([*kept, "", "# secure mode (services/stack/secure.py)"])
        text += "\n" + "\n".join(f"{k}={v}" for k, v in props.items()) + "\n"
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:  # it holds the broker's password
            handle.write(text)

    def _format(self, say: Say) -> None:
        cluster_id = _cluster_id()
        say(f"{self.name}: formatting storage with SCRAM users {', '.join(KAFKA_USERS)}")
        scram: list[str] = []
        for user, secret in KAFKA_USERS.items():
            password = self.material.passwords[secret]
            scram += ["--add-scram", f"{KAFKA_MECHANISM}=[name={user},password={password}]"]
        argv = self._java(STORAGE_TOOL, "format", "--standalone", "-t", cluster_id,
                          "-c", str(self.config), *scram, heap=["-Xmx256m"])  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        if result.returncode != 0:
            raise StackError(f"kafka storage format failed:\n{result.stdout}\n{result.stderr}")

    async def probe(self, timeout_s: float = 5.0) -> None:
        """Raise unless the broker answers a metadata request over SASL_SSL as the admin."""
        from aiokafka.client import AIOKafkaClient

        from services.common.kafka import client_kwargs

        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout_s
            )
        except (OSError, TimeoutError) as exc:
            raise StackError(f"no listener at {self.address}: {exc}") from None
        writer.close()
        await writer.wait_closed()
        timeout_ms = int(timeout_s * 1000)
        client = AIOKafkaClient(
            **client_kwargs(client_settings(self, "opsledger-admin")),
            request_timeout_ms=timeout_ms,
            connections_max_idle_ms=timeout_ms + 1000,
            metadata_max_age_ms=timeout_ms,
        )
        try:
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
            if not metadata.brokers():
                raise StackError("the broker answered with no brokers yet")
        finally:
            await client.close()


def client_settings(part: SecureKafkaPart, user: str):  # type: ignore[no-untyped-def]
    """CommonSettings of a SASL_SSL client of ``part`` authenticating as ``user``."""
    from services.common.settings import CommonSettings

    return CommonSettings(
        kafka_bootstrap_servers=part.address,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=KAFKA_MECHANISM,
        kafka_sasl_username=user,
        kafka_sasl_password=part.material.passwords[KAFKA_USERS[user]],
        kafka_ssl_cafile=str(part.material.ca),
    )


class SecurePostgresPart(PostgresPart):
    """PostgreSQL with ssl=on and deploy/postgres/pg_hba.conf: TLS and a password, or nothing."""

    def __init__(self, settings: StackSettings, material: certs.Material) -> None:
        super().__init__(settings)
        self.material = material
        self.tls_dir = self.home / "tls"

    def bin_dir(self) -> Path:
        """A PostgreSQL built with OpenSSL: the embedded wheel's when it is, else the system's
        (Debian's `postgresql` package; `make postgres-tls` installs it)."""
        return tls_bin_dir()

    @property
    def superuser_password(self) -> str:
        return self.material.passwords["POSTGRES_PASSWORD"]

    def dsn(self, database: str) -> str:
        return database_url(
            self.s.pg_user, self.superuser_password, self.s.host, self.s.pg_port, database,
            self.material.ca,
        )  # fmt: skip

    def prepare(self, say: Say) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        super().prepare(say)
        # The server reads its key, certificate and hba file as its own account; the key
        # must be private to it (PostgreSQL refuses a group- or world-readable key).
        self.tls_dir.mkdir(mode=0o700, exist_ok=True)
        for source, name in (
            (self.material.postgres_cert, "server.crt"),
            (self.material.postgres_key, "server.key"),
            (repo_root() / PG_HBA, "pg_hba.conf"),
        ):
            target = self.tls_dir / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in [self.tls_dir, *self.tls_dir.iterdir()]:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb_auth(self) -> list[str]:
        pwfile = self.home / "initdb.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.superuser_password + "\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        return ["--auth=scram-sha-256", f"--pwfile={pwfile}"]

    def _initdb(self, say: Say) -> None:
        try:
            super()._initdb(say)
        finally:
            (self.home / "initdb.pw").unlink(missing_ok=True)

    def _server_argv(self) -> list[str]:
        settings = {
            **POSTGRES_SERVER,
            "ssl_cert_file": str(self.tls_dir / "server.crt"),
            "ssl_key_file": str(self.tls_dir / "server.key"),
            "hba_file": str(self.tls_dir / "pg_hba.conf"),
            "password_encryption": "scram-sha-256",
        }
        argv = super()._server_argv()
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    async def probe(self, timeout_s: float = 5.0) -> None:
        from services.stack.postgres import _select_one

        await _select_one(self.dsn(self.s.pg_database), timeout_s)


def _has_openssl(bin_dir: Path) -> bool:
    pg_config = bin_dir / "pg_config"
    if not pg_config.exists():
        return False
    result = subprocess.run(  # noqa: S603
        [str(pg_config), "--configure"], capture_output=True, text=True, timeout=30, check=False
    )
    return "--with-openssl" in result.stdout


def tls_bin_dir() -> Path:
    """The first PostgreSQL server directory whose build supports TLS."""
    from services.stack.postgres import _bin_dir

    candidates = [_bin_dir()]
    system = shutil.which("pg_config")
    if system:
        bindir = subprocess.run(  # noqa: S603
            [system, "--bindir"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
        if bindir:
            candidates.append(Path(bindir))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for candidate in candidates:
        if (candidate / "postgres").exists() and _has_openssl(candidate):
            return candidate
    raise StackError(
        "no PostgreSQL server built with OpenSSL (the embedded wheel's is not); install "
        "Debian's `postgresql` package (`make postgres-tls`)"
    )


class SecureIssuerPart(IssuerPart):
    """The development issuer over https, with the generated certificate."""

    def __init__(self, settings: StackSettings, material: certs.Material) -> None:
        super().__init__(settings)
        self.material = material
        self.address = f"https://{settings.host}:{settings.issuer_port}"

    def launch(self) -> PidRecord:
        argv = [sys.executable, "-m", "services.stack.devissuer", "--host", self.s.host,
                "--port", str(self.s.issuer_port), "--dir", str(self.home),
                "--issuer", self.address, "--tls-cert", str(self.material.issuer_cert),
                "--tls-key", str(self.material.issuer_key)]  # fmt: skip
        proc = spawn(argv, log=self.log, cwd=self.home)
        return write_pid(self.pid_file, proc.pid)

    async def probe(self, timeout_s: float = 5.0) -> None:
        url = f"{self.address}/.well-known/openid-configuration"
        try:
            context = ssl.create_default_context(cafile=str(self.material.ca))
            async with httpx.AsyncClient(timeout=timeout_s, verify=context) as client:
                response = await client.get(url)
        except httpx.HTTPError as exc:
            raise StackError(f"no issuer at {url}: {exc}") from None
        if response.status_code != 200 or response.json().get("issuer") != self.address:
            raise StackError(f"{url} answered {response.status_code}: {response.text[:200]}")


@dataclass(frozen=True)
class SecureInfo:
    """Where the secure stack answers and how each service connects to it."""

    settings: StackSettings
    material: certs.Material
    kafka_bootstrap: str
    issuer: str

    def database_url(self, role: str) -> str:
        """A verify-full DSN of ``role`` (a service role, or the stack's superuser)."""
        s = self.settings
        secret = "POSTGRES_PASSWORD" if role == s.pg_user else DATABASE_ROLES[role]
        password = self.material.passwords[secret]
        return database_url(role, password, s.host, s.pg_port, s.pg_database, self.material.ca)

    def kafka_env(self, user: str) -> dict[str, str]:
        return {
            "OPSLEDGER_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            **KAFKA_CLIENT,
            "OPSLEDGER_KAFKA_SASL_USERNAME": user,
            "OPSLEDGER_KAFKA_SASL_PASSWORD": self.material.passwords[KAFKA_USERS[user]],
            "OPSLEDGER_KAFKA_SSL_CAFILE": str(self.material.ca),
        }

    def service_env(self, service: str) -> dict[str, str]:
        """The environment of `opsledger serve <service>` (production, nothing insecure)."""
        env = {
            "OPSLEDGER_ENV": "production",
            "OPSLEDGER_OIDC_ISSUER": self.issuer,
            "OPSLEDGER_OIDC_CA_FILE": str(self.material.ca),
        }
        if service in SERVICE_KAFKA_USER:
            env.update(self.kafka_env(SERVICE_KAFKA_USER[service]))
        if service in SERVICE_DATABASE_ROLE:
            env["OPSLEDGER_DATABASE_URL"] = self.database_url(SERVICE_DATABASE_ROLE[service])
        return env


class SecureStack:
    """Start, check and stop the secure stack in ``settings.dir``."""

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.cert_dir = settings.dir / "certs"

    def _parts(self, material: certs.Material) -> list[KafkaPart | PostgresPart | IssuerPart]:
        return [
            SecureKafkaPart(self.s, material),
            SecurePostgresPart(self.s, material),
            SecureIssuerPart(self.s, material),
        ]

    def material(self) -> certs.Material:
        return certs.generate(self.cert_dir)

    def info(self) -> SecureInfo:
        material = self.material()
        issuer = SecureIssuerPart(self.s, material).address
        return SecureInfo(self.s, material, f"{self.s.host}:{self.s.kafka_port}", issuer)

    def up(self, say: Say) -> SecureInfo:
        from services.stack.manager import _migrate, _run, _wait_ready
        from services.stack.procs import read_pid

        self.s.dir.mkdir(parents=True, exist_ok=True)
        with locked(self.s.dir / "stack.lock"):
            material = self.material()
            parts = self._parts(material)
            to_start = []
            for part in parts:
                record = read_pid(part.pid_file)
                if record is not None and record.alive():
                    continue
                for port, what in part.ports:
                    if port_in_use(self.s.host, port):
                        raise StackError(
                            f"port {port} ({what}) is already in use; stop the plain stack "
                            "(`opsledger stack down`) or choose other OPSLEDGER_STACK_*_PORTs"
                        )
                to_start.append(part)
            for part in to_start:
                part.prepare(say)
                say(f"{part.name}: starting (secure) at {part.address}")
                part.launch()
            started_at = time.monotonic()
            for part in parts:
                _wait_ready(part, self.s, started_at)
            info = self.info()
            superuser = info.database_url(self.s.pg_user)
            _migrate(superuser, say)
            _run(_roles_with_passwords(superuser, material))
            say("postgres: service roles, grants and passwords applied")
        return info

    def down(self, say: Say) -> set[str]:
        from services.stack.manager import _stop_part

        stopped = set()
        material = self.material()
        with locked(self.s.dir / "stack.lock"):
            for part in self._parts(material):
                if _stop_part(part, self.s):
                    stopped.add(part.name)
                    say(f"{part.name}: stopped")
        return stopped

    def kill(self) -> None:
        """SIGKILL every part (tests' cleanup after a failure)."""
        from services.stack.procs import read_pid, stop

        for part in self._parts(self.material()):
            record = read_pid(part.pid_file)
            if record is not None:
                stop(record, sig=signal.SIGKILL, timeout_s=10)
            part.pid_file.unlink(missing_ok=True)


async def _roles_with_passwords(superuser_url: str, material: certs.Material) -> None:
    import asyncpg

    from services.stack import roles

    await roles.apply(superuser_url)
    conn = await asyncpg.connect(superuser_url, timeout=10)
    try:
        for role, secret in DATABASE_ROLES.items():
            password = material.passwords[secret].replace("'", "''")
            await conn.execute(f"ALTER ROLE {role} PASSWORD '{password}'")
    finally:
        await conn.close()
