"""The deployment as docker-compose.yml ships it, on the real servers: Kafka over SASL_SSL with
SCRAM users, PostgreSQL over TLS only (verify-full), the services in production mode with no
INSECURE_* setting, and an event counted end to end. A plaintext client and a wrong password
are refused by both servers.

The secure stack (services/stack/secure.py) runs on free ports in a temporary directory, with
certificates and passwords that `services.stack.certs` generates there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from schemas.examples import fresh_event
from services.common.kafka import client_kwargs
from services.common.settings import CommonSettings
from services.devtools.procs import ServiceProcess, free_port
from services.stack.devissuer.keys import load_or_create
from services.stack.devissuer.tokens import claims_for
from services.stack.secure import INSECURE_SETTINGS, SecureInfo, SecureStack
from services.stack.settings import StackSettings
from services.tlog.keys import Signer


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureInfo]:
    home = tmp_path_factory.mktemp("secure-stack")
    settings = StackSettings(
        dir=home,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        pg_port=free_port(),
        issuer_port=free_port(),
        kafka_heap="-Xms128m -Xmx384m",
        ready_timeout_s=120.0,
    )
    stack = SecureStack(settings)
    try:
        yield stack.up(lambda message: print(message, flush=True))
    finally:
        stack.kill()
        shutil.rmtree(home, ignore_errors=True)


def _token(info: SecureInfo, role: str, op: str) -> str:
    key = load_or_create(info.settings.issuer_dir)
    claims = claims_for(
        issuer=info.issuer, audience="opsledger", role=role, operations=[op], ttl_s=600
    )
    return key.sign(claims)


def _service(info: SecureInfo, name: str, log_dir: Path, **extra: str) -> ServiceProcess:
    env = {**info.service_env(name), **extra}
    for variable in INSECURE_SETTINGS:  # nothing says a connection may be insecure
        assert variable not in env and variable not in os.environ
    return ServiceProcess(name, env, log_dir, health_path="/readyz")


async def _metadata(settings: CommonSettings) -> None:
    client = AIOKafkaClient(**client_kwargs(settings), request_timeout_ms=5000)
    try:
        async with asyncio.timeout(20):
            await client.bootstrap()
    finally:
        await client.close()


async def test_an_event_is_counted_through_kafka_sasl_ssl_and_postgres_tls(
    secure: SecureInfo, tmp_path: Path, unique_id: str
) -> None:
    op = f"secure-{unique_id}"
    topic = f"secure-{unique_id}"
    shared = {
        "OPSLEDGER_TOPIC": topic,
        "OPSLEDGER_DLQ_TOPIC": f"{topic}.dlq",
        "OPSLEDGER_TOPIC_PARTITIONS": "3",
        "OPSLEDGER_CONSUMER_GROUP": f"{topic}-group",
    }
    aggregator_env = {
        **shared,
        "OPSLEDGER_AGGREGATOR_DATA_DIR": str(tmp_path / "faust"),
        "OPSLEDGER_TLOG_SIGNING_KEY": Signer.generate("ledger.secure.test").secret(),
    }
    ingest = _service(secure, "ingest", tmp_path, **shared)
    aggregator = _service(secure, "aggregator", tmp_path, **aggregator_env)
    query = _service(secure, "query", tmp_path, **shared)
    services = [ingest, aggregator, query]
    try:
        for service in services:
            service.start(wait=False)
        for service in services:
            service.wait_healthy(120)
        event = fresh_event(op)
        async with httpx.AsyncClient(timeout=10) as client:
            posted = await client.post(
                f"{ingest.url}/v1/events",
                json=event,
                headers={"Authorization": f"Bearer {_token(secure, 'field', op)}"},
            )
            assert posted.status_code in (200, 201, 202), posted.text
            headers = {"Authorization": f"Bearer {_token(secure, 'supervisor', op)}"}
            deadline = time.monotonic() + 90
            count = 0
            while time.monotonic() < deadline:
                r = await client.get(f"{query.url}/v1/operations/{op}/totals", headers=headers)
                assert r.status_code in (200, 404), r.text
                if r.status_code == 200:
                    count = int(r.json()["metrics"]["warrants_executed"])
                    if count:
                        break
                await asyncio.sleep(0.5)
            assert count == 1, f"not counted:\n{aggregator.tail()}"
    finally:
        for service in services:
            service.stop()
    for service in services:  # production mode, and nothing said it was insecure
        assert "INSECURE" not in service.log.read_text()


async def test_kafka_refuses_a_plaintext_client(secure: SecureInfo) -> None:
    plaintext = CommonSettings(kafka_bootstrap_servers=secure.kafka_bootstrap)
    with pytest.raises((KafkaConnectionError, TimeoutError)):
        await _metadata(plaintext)


async def test_kafka_refuses_a_wrong_password(secure: SecureInfo) -> None:
    right = CommonSettings(**_kafka_fields(secure, "opsledger-ingest"))
    await _metadata(right)  # the same client with the right password gets in
    wrong = CommonSettings(
        **{**_kafka_fields(secure, "opsledger-ingest"), "kafka_sasl_password": "not-it"}
    )
    with pytest.raises((KafkaError, TimeoutError)):
        await _metadata(wrong)


def _kafka_fields(info: SecureInfo, user: str) -> dict[str, str]:
    env = info.kafka_env(user)
    return {
        name.removeprefix("OPSLEDGER_").lower(): value
        for name, value in env.items()
        if name.startswith("OPSLEDGER_KAFKA_")
    }


async def test_postgres_refuses_plaintext_and_a_wrong_password(secure: SecureInfo) -> None:
    url = secure.database_url("opsledger_query")
    conn = await asyncpg.connect(url, timeout=10)  # TLS, verified name, right password
    try:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await conn.close()
    plaintext = url.replace("sslmode=verify-full", "sslmode=disable")
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(plaintext, timeout=10)
    user, _, rest = url.removeprefix("postgresql://").partition(":")
    wrong = f"postgresql://{user}:not-it@{rest.partition('@')[2]}"
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong, timeout=10)
