"""Security-suite fixtures: the real ingest and query apps in-process over the real stack.

Ingest produces to a topic private to the session; query reads an operation whose events a
real `BatchWriter` applied to the shared PostgreSQL (no aggregator process needed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import orjson
import pytest

from schemas.examples import fresh_event
from services.common.auth import issue_token
from services.common.db import create_pool
from services.common.settings import CommonSettings
from services.common.wire import Submission, encode_submission
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.ledger.writer import BatchWriter
from services.query.app import create_app as create_query
from services.query.settings import QuerySettings

MAX_BODY = 64 * 1024


# One valid event, fresh id, occurring now: shared with the product's examples.
make_event = fresh_event


@dataclass(frozen=True)
class World:
    """Names shared by the security tests."""

    op: str  # has events in the ledger
    other: str  # another operation, outside the scoped tokens
    topic: str


@pytest.fixture(scope="session")
def world(stack: Any) -> World:
    suffix = secrets.token_hex(4)
    return World(op=f"sec-{suffix}", other=f"sec-other-{suffix}", topic=f"sec-{suffix}")


@pytest.fixture(scope="session")
def common(world: World, kafka_bootstrap: str, database_url: str) -> dict[str, Any]:
    return {
        "env": "test",
        "kafka_bootstrap_servers": kafka_bootstrap,
        "database_url": database_url,
        "topic": world.topic,
        "dlq_topic": f"{world.topic}.dlq",
    }


@pytest.fixture(scope="session")
async def ingest(common: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The ingest app (real Kafka producer) behind an in-process client."""
    app = create_ingest(IngestSettings(**common, max_body_bytes=MAX_BODY, max_batch_events=50))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield client


@pytest.fixture(scope="session")
async def query(common: dict[str, Any], world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The query app (real pool) behind an in-process client, over a seeded operation."""
    settings = QuerySettings(**common, consumer_group=f"{world.topic}-group")
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        writer = BatchWriter(pool, topic=world.topic, consumer_group=settings.consumer_group)
        now = datetime.now(UTC).isoformat()
        events = [make_event(world.op), make_event(world.op, "school_visited")]
        value = encode_submission(Submission(world.op, now, "pc-seed", events))
        await writer.apply_records([(0, 0, value)])
    finally:
        await pool.close()
    app = create_query(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://query") as client:
            yield client


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(settings: CommonSettings, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "mallory",
        "role": "admin",
        "ops": [],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(over)
    return claims


def _hs512(claims: dict[str, Any], secret: str) -> str:
    """A correctly signed token with another algorithm than the fixed HS256 (built by hand:
    PyJWT warns about the key length for HS512)."""
    header = _b64(orjson.dumps({"alg": "HS512", "typ": "JWT"}))
    body = _b64(orjson.dumps(claims))
    mac = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha512).digest()
    return f"{header}.{body}.{_b64(mac)}"


def credentials(world: World) -> dict[str, str | None]:
    """Every caller of the matrix: its bearer token (None: no Authorization header)."""
    s = CommonSettings()
    secret = s.jwt_secret.get_secret_value()
    good = issue_token(s, role="field", operations=[world.op], subject="pc-1")
    head, body, sig = good.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    escalated = _b64(orjson.dumps({**claims, "role": "admin"}))
    return {
        "field": good,
        "field-other-op": issue_token(s, role="field", operations=[world.other]),
        "supervisor": issue_token(s, role="supervisor", operations=[world.op]),
        "supervisor-other-op": issue_token(s, role="supervisor", operations=[world.other]),
        "auditor": issue_token(s, role="auditor"),
        "admin": issue_token(s, role="admin"),
        "none": None,
        "expired": jwt.encode(_claims(s, exp=int(time.time()) - 60), secret, algorithm="HS256"),
        "alg-none": jwt.encode(_claims(s), None, algorithm="none"),
        "wrong-audience": jwt.encode(_claims(s, aud="someone-else"), secret, algorithm="HS256"),
        "wrong-issuer": jwt.encode(_claims(s, iss="someone-else"), secret, algorithm="HS256"),
        "wrong-key": jwt.encode(_claims(s), "x" * 40, algorithm="HS256"),
        "tampered-signature": f"{head}.{body}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}",
        "escalated-payload": f"{head}.{escalated}.{sig}",
        "hs512": _hs512(_claims(s), secret),
        "unknown-role": jwt.encode(_claims(s, role="root"), secret, algorithm="HS256"),
        "garbage": "not-a-jwt",
    }
