"""docker-compose.yml's Kafka node, as compose would start it, on the real broker: its
environment (interpolated with generated secrets) through deploy/kafka/compose-start.sh, the
cached Kafka jars standing in for the apache/kafka image's /opt/kafka. Only the addresses are
rewritten to free loopback ports (no Docker network here); every security setting is compose's.

Clients of both SASL_SSL listeners (INTERNAL, HOST) get in with their SCRAM password; a
plaintext client and a wrong password do not; a client without the controllers' certificate is
refused by the mutual-TLS controller listener.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from services.common.kafka import client_kwargs
from services.common.settings import CommonSettings
from services.devtools.procs import free_port
from services.stack import certs
from services.stack.settings import StackSettings, repo_root
from tests.unit.test_deploy_compose import (  # type: ignore[import-not-found]
    env_of,
    interpolate,
    load_compose,
)

SCRIPT = repo_root() / "deploy" / "kafka" / "compose-start.sh"


def _shim(home: Path, libs: Path) -> Path:
    """A KAFKA_HOME whose bin/ scripts run the cached jars (the image ships the real ones)."""
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True)
    log4j = repo_root() / "deploy" / "local" / "kafka" / "log4j2.properties"
    java = shutil.which("java")
    assert java, "java is needed for the broker"
    common = f'-cp "{libs}/*" -Dlog4j2.configurationFile={log4j} -Dkafka.logs.dir={home}'
    (bin_dir / "kafka-storage.sh").write_text(
        f'#!/bin/sh\nexec {java} -Xmx256m {common} kafka.tools.StorageTool "$@"\n'
    )
    (bin_dir / "kafka-server-start.sh").write_text(
        f'#!/bin/sh\nexec {java} -Xms128m -Xmx384m {common} kafka.Kafka "$@"\n'
    )
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    return home


@pytest.fixture(scope="module")
def compose_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    home = tmp_path_factory.mktemp("compose-kafka")
    material = certs.generate(home / "secrets", for_containers=True)
    secrets_env = certs.read_env(material.env_file)
    # Compose's kafka service, interpolated as compose does, with these generated secrets.
    raw_env = env_of(load_compose()["services"]["kafka"])  # as written: ${...} not yet replaced
    env = interpolate(raw_env, secrets_env)
    ports = {"INTERNAL": free_port(), "HOST": free_port(), "CONTROLLER": free_port()}
    paths = {
        "/run/opsledger/kafka.pem": material.kafka_keystore,
        "/run/opsledger/ca.pem": material.ca,
    }
    env = {k: str(paths.get(v, v)) for k, v in env.items()}
    env.update(
        KAFKA_LISTENERS=",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items()),
        KAFKA_ADVERTISED_LISTENERS=f"INTERNAL://127.0.0.1:{ports['INTERNAL']},"
        f"HOST://localhost:{ports['HOST']}",
        KAFKA_CONTROLLER_QUORUM_VOTERS=f"1@127.0.0.1:{ports['CONTROLLER']}",
        KAFKA_LOG_DIRS=str(home / "data"),
        KAFKA_NODE_ID="1",
    )
    libs = StackSettings().kafka_libs
    run_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")},
        **env,
        "KAFKA_HOME": str(_shim(home / "kafka", libs)),
        "OPSLEDGER_KAFKA_CONFIG": str(home / "config" / "server.properties"),
    }
    log = (home / "kafka.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603 - the project's script
        ["/bin/bash", str(SCRIPT)], env=run_env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield {"ports": ports, "secrets": secrets_env, "ca": str(material.ca), "home": home,
               "proc": proc}  # fmt: skip
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


def _settings(port: int, **over: object) -> CommonSettings:
    return CommonSettings(kafka_bootstrap_servers=f"localhost:{port}", **over)  # type: ignore[arg-type]


def _scram(ctx: dict[str, object], port: int, user: str, password: str) -> CommonSettings:
    return _settings(
        port,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=user,
        kafka_sasl_password=password,
        kafka_ssl_cafile=ctx["ca"],
    )


async def _metadata(settings: CommonSettings, bound_s: float = 20) -> None:
    client = AIOKafkaClient(**client_kwargs(settings), request_timeout_ms=5000)
    try:
        async with asyncio.timeout(bound_s):
            await client.bootstrap()
            if not (await client.fetch_all_metadata()).brokers():
                raise KafkaConnectionError("no brokers yet")
    finally:
        await client.close()


async def _until_up(ctx: dict[str, object]) -> None:
    secrets_env: dict[str, str] = ctx["secrets"]  # type: ignore[assignment]
    good = _scram(ctx, ctx["ports"]["INTERNAL"], "opsledger-ingest",  # type: ignore[index]
                  secrets_env["KAFKA_INGEST_SCRAM_PASSWORD"])  # fmt: skip
    proc: subprocess.Popen[bytes] = ctx["proc"]  # type: ignore[assignment]
    last: Exception | None = None
    for _ in range(120):
        if proc.poll() is not None:
            log = (Path(str(ctx["home"])) / "kafka.log").read_text()[-3000:]
            raise AssertionError(f"compose-start.sh exited {proc.returncode}:\n{log}")
        try:
            await _metadata(good, 5)
            return
        except (KafkaError, TimeoutError, OSError) as exc:
            last = exc
            await asyncio.sleep(1)
    raise AssertionError(f"the compose broker never answered: {last!r}")


async def test_compose_broker_admits_each_scram_user_on_both_listeners(
    compose_kafka: dict[str, object],
) -> None:
    await _until_up(compose_kafka)
    secrets_env: dict[str, str] = compose_kafka["secrets"]  # type: ignore[assignment]
    ports: dict[str, int] = compose_kafka["ports"]  # type: ignore[assignment]
    for listener in ("INTERNAL", "HOST"):
        for user, secret in (("opsledger-ingest", "KAFKA_INGEST_SCRAM_PASSWORD"),
                             ("opsledger-aggregator", "KAFKA_AGGREGATOR_SCRAM_PASSWORD"),
                             ("opsledger-admin", "KAFKA_ADMIN_SCRAM_PASSWORD")):  # fmt: skip
            await _metadata(_scram(compose_kafka, ports[listener], user, secrets_env[secret]))


async def test_compose_broker_refuses_plaintext_a_wrong_password_and_a_stranger_controller(
    compose_kafka: dict[str, object],
) -> None:
    await _until_up(compose_kafka)
    ports: dict[str, int] = compose_kafka["ports"]  # type: ignore[assignment]
    with pytest.raises((KafkaError, TimeoutError)):
        await _metadata(_settings(ports["HOST"]), 10)
    with pytest.raises((KafkaError, TimeoutError)):
        await _metadata(_scram(compose_kafka, ports["HOST"], "opsledger-ingest", "not-it"), 10)
    # The controllers' listener wants a client certificate signed by the deployment's CA.
    context = ssl.create_default_context(cafile=str(compose_kafka["ca"]))
    context.check_hostname = False
    reader, writer = await asyncio.open_connection("127.0.0.1", ports["CONTROLLER"], ssl=context)
    try:
        # TLS 1.3: the refusal of the missing client certificate (an alert) comes on first read.
        writer.write(b"\x00\x00\x00\x01\x00")
        await writer.drain()
        with pytest.raises(ssl.SSLError, match="(?i)bad.certificate|certificate.required"):
            await asyncio.wait_for(reader.read(1), 10)
    finally:
        writer.close()
