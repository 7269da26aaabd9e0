"""Fixtures shared by every test tier.

The first section (the local stack) is owned by services/stack; add your own fixtures below
the marked line at the end.  Integration tests never skip because a service is missing: the
`stack` fixture starts it, or fails the test saying what is missing.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest

from services import stack as local_stack
from services.devtools.kafka import PrivateKafka
from services.stack.keycloak import RunningKeycloak, ensure_keycloak, stop_keycloak

# ---- local stack: real Kafka + PostgreSQL ------------------------------------------------


@pytest.fixture(scope="session")
def stack() -> Iterator[local_stack.StackInfo]:
    """The running stack (started once, or reused); stops at session end only what it started."""
    problem = ""
    try:
        info = local_stack.ensure_up()
    except local_stack.StackError as exc:
        problem = str(exc)
    if problem:  # failed outside the except block, so the report is one message, not a chain
        pytest.fail(f"the local stack (Kafka + PostgreSQL) is not ready: {problem}", pytrace=False)
    env = pytest.MonkeyPatch()
    for name, value in info.env().items():
        env.setenv(name, value)
    yield info
    env.undo()
    if info.started:
        local_stack.down(only=info.started)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: local_stack.StackInfo) -> str:
    """host:port of the real broker."""
    return stack.kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(stack: local_stack.StackInfo) -> str:
    """DSN of the real PostgreSQL, migrated."""
    return stack.database_url


@pytest.fixture
def unique_id() -> str:
    """A short random suffix for topics, operation ids and tables private to one test."""
    return secrets.token_hex(4)


# ---- add fixtures for other areas below this line ---------------------------------------


# ---- a real OpenID Connect provider: Keycloak (services/stack/keycloak.py) ----------------


@pytest.fixture(scope="session")
def keycloak() -> Iterator[RunningKeycloak]:
    """Keycloak with the trusted and the untrusted realm: started once per session, or reused
    when one is already running; stopped at the end only when this session started it."""
    problem = ""
    try:
        running = ensure_keycloak(say=lambda message: print(message, flush=True))
    except local_stack.StackError as exc:
        problem = str(exc)
    if problem:
        pytest.fail(f"Keycloak (the tests' identity provider) is not ready: {problem}", False)
    yield running
    if running.started:
        stop_keycloak()


@pytest.fixture
async def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrivateKafka]:
    """A started Kafka broker only this test uses (it may kill and restart it); gone after."""
    home = tmp_path_factory.mktemp("private-kafka")
    kafka = PrivateKafka(home)
    try:
        await kafka.start()
        yield kafka
    finally:
        await kafka.kill()
        shutil.rmtree(home, ignore_errors=True)
