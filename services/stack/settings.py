"""Where the local stack lives and listens; every field can be overridden from the environment.

The defaults are the addresses `CommonSettings` uses, so that after `opsledger stack up` every
command works with no environment.  A second checkout runs beside the first by changing the
ports and the directory (``OPSLEDGER_STACK_KAFKA_PORT``, ``OPSLEDGER_STACK_PG_PORT``,
``OPSLEDGER_STACK_DIR``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

import services

# The repository root in a checkout (editable install): deploy/ sits beside services/.
_PACKAGE_ROOT = Path(services.__file__).resolve().parent.parent


def repo_root() -> Path:
    """The checkout holding deploy/local (the package's parent, else the working directory)."""
    if (_PACKAGE_ROOT / "deploy" / "local").is_dir():
        return _PACKAGE_ROOT
    return Path.cwd()


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opsledger"


class StackSettings(BaseSettings):
    """Ports, paths and limits of the local Kafka + PostgreSQL stack."""

    model_config = SettingsConfigDict(env_prefix="OPSLEDGER_STACK_", extra="ignore", frozen=True)

    dir: Path = Field(
        default_factory=lambda: repo_root() / ".local",
        description="State directory: data, logs and pid files of the local stack.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache,
        description="Cache outside the repository for the Kafka jars (kept across clones).",
    )
    host: str = Field("127.0.0.1", description="Interface both servers listen on.")
    kafka_port: int = Field(39092, ge=1, le=65535, description="Kafka PLAINTEXT listener.")
    kafka_controller_port: int | None = Field(
        None, ge=1, le=65535, description="KRaft CONTROLLER listener (default: kafka_port + 1)."
    )
    kafka_heap: str = Field("-Xms256m -Xmx768m", description="JVM heap flags of each broker.")
    brokers: int | None = Field(
        None,
        ge=1,
        le=9,
        description="Kafka nodes to run (default: what the last `stack up --brokers N` chose, "
        "else 1). Node n of a cluster listens on its own loopback address and on "
        "kafka_port + 2(n-1) and controller port + 2(n-1).",
    )
    cluster_hosts: str | None = Field(
        None,
        description="Comma-separated loopback addresses of the nodes of a multi-broker stack "
        "(default 127.0.0.11, 127.0.0.12, ...): one each, so a fault test can cut one off.",
    )
    pg_port: int = Field(35432, ge=1, le=65535, description="PostgreSQL port.")
    issuer_port: int = Field(
        39480, ge=1, le=65535, description="Development token issuer (OIDC discovery + JWKS)."
    )
    pg_user: str = Field("opsledger", description="Database role (superuser, trust on loopback).")
    pg_database: str = Field("opsledger", description="Database created on first start.")
    pg_system_user: str = Field(
        "opsledger-pg",
        description="Unprivileged OS account that runs PostgreSQL when the stack runs as root.",
    )
    migrate: bool = Field(True, description="Apply database migrations on `stack up`.")
    ready_timeout_s: float = Field(60.0, gt=0, description="Bound on waiting for a part to answer.")
    stop_timeout_s: float = Field(30.0, gt=0, description="SIGTERM grace before SIGKILL.")

    @property
    def controller_port(self) -> int:
        return self.kafka_controller_port or self.kafka_port + 1

    @property
    def cluster_file(self) -> Path:
        """Written by `stack up --brokers N` (N > 1), removed by `stack down`."""
        return self.dir / "kafka-cluster.json"

    @property
    def kafka_nodes(self) -> int:
        """How many Kafka nodes the stack runs: 1 (one broker) or a cluster's size."""
        if self.brokers is not None:
            return self.brokers
        try:
            return int(json.loads(self.cluster_file.read_text())["brokers"])
        except (OSError, ValueError, KeyError, TypeError):
            return 1

    def node_host(self, node: int) -> str:
        """The loopback address node ``node`` (1-based) of a cluster listens on."""
        if self.cluster_hosts:
            hosts = [h.strip() for h in self.cluster_hosts.split(",") if h.strip()]
            return hosts[node - 1]
        return f"127.0.0.{10 + node}"

    def node_port(self, node: int) -> int:
        return self.kafka_port + 2 * (node - 1)

    def node_controller_port(self, node: int) -> int:
        return self.controller_port + 2 * (node - 1)

    @property
    def kafka_bootstrap(self) -> str:
        nodes = self.kafka_nodes
        if nodes == 1:
            return f"{self.host}:{self.kafka_port}"
        return ",".join(f"{self.node_host(n)}:{self.node_port(n)}" for n in range(1, nodes + 1))

    @property
    def database_url(self) -> str:
        return f"postgresql://{self.pg_user}@{self.host}:{self.pg_port}/{self.pg_database}"

    @property
    def issuer_url(self) -> str:
        """The `iss` of development tokens; the services' default issuer in development."""
        return f"http://{self.host}:{self.issuer_port}"

    @property
    def issuer_dir(self) -> Path:
        """The development issuer's key pair (the private key never leaves this directory)."""
        return self.dir / "issuer"

    @property
    def kafka_pom(self) -> Path:
        return repo_root() / "deploy" / "local" / "kafka" / "pom.xml"

    @property
    def kafka_version(self) -> str:
        match = re.search(r"<kafka.version>([^<]+)</kafka.version>", self.kafka_pom.read_text())
        if match is None:
            raise RuntimeError(f"no <kafka.version> in {self.kafka_pom}")
        return match.group(1).strip()

    @property
    def kafka_libs(self) -> Path:
        return self.cache_dir / f"kafka-{self.kafka_version}" / "libs"
