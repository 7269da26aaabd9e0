"""Security-suite fixtures: the real ingest and query apps in-process over the real stack.

Ingest produces to a topic private to the session; query reads an operation whose events a
real `BatchWriter` applied to the shared PostgreSQL (no aggregator process needed). Both apps
trust a real OpenID Connect provider, the Keycloak the session starts (tests/conftest.py), and
every caller signs in to it.
"""

from __future__ import annotations

import base64
import functools
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
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from schemas.examples import fresh_event
from services.common.db import create_pool
from services.common.oidc import unverified_claims
from services.common.wire import Submission, encode_submission
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.ledger.writer import BatchWriter
from services.query.app import create_app as create_query
from services.query.settings import QuerySettings
from services.stack.keycloak import (
    SHORT_CLIENT,
    KeycloakAdmin,
    RunningKeycloak,
    password_token,
)

MAX_BODY = 64 * 1024


# One valid event, fresh id, occurring now: shared with the product's examples.
make_event = fresh_event


@dataclass(frozen=True)
class World:
    """Names shared by the security tests, and the identity provider that signs their tokens."""

    op: str  # has events in the ledger
    other: str  # another operation, outside the scoped tokens
    topic: str
    keycloak: RunningKeycloak
    short_lived: str  # a real token that expires seconds after the session starts


@pytest.fixture(scope="session")
def world(stack: Any, keycloak: RunningKeycloak) -> World:
    suffix = secrets.token_hex(4)
    op, other = f"sec-{suffix}", f"sec-other-{suffix}"
    admin = KeycloakAdmin(keycloak)
    try:
        for user, ops in [("field", [op]), ("field-other", [other]), ("supervisor", [op]),
                          ("supervisor-other", [other])]:  # fmt: skip
            admin.set_operations("opsledger", user, ops)
    finally:
        admin.close()
    short = password_token(keycloak, "supervisor", client=SHORT_CLIENT)
    wait_until_expired(short)  # here, before any app runs: the matrix's "expired" caller
    return World(op=op, other=other, topic=f"sec-{suffix}", keycloak=keycloak, short_lived=short)


# The apps trust the real provider's `opsledger` realm. A small leeway and quick key refreshes
# keep the expiry and key-withdrawal tests short; the rules are the production ones.
LEEWAY_S = 1.0
JWKS_REFRESH_S = 5.0


@pytest.fixture(scope="session")
def common(world: World, kafka_bootstrap: str, database_url: str) -> dict[str, Any]:
    return {
        "env": "test",
        "kafka_bootstrap_servers": kafka_bootstrap,
        "database_url": database_url,
        "topic": world.topic,
        "dlq_topic": f"{world.topic}.dlq",
        "oidc_issuer": world.keycloak.issuer("opsledger"),
        "oidc_leeway_s": LEEWAY_S,
        "oidc_jwks_refresh_s": JWKS_REFRESH_S,
        "oidc_jwks_min_refresh_interval_s": 1.0,
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
    settings = QuerySettings(
        **common, consumer_group=f"{world.topic}-group",
        operations_database_url=common["database_url"],  # admins create and close here
    )  # fmt: skip
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


def _forged(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    head = _b64(orjson.dumps(header))
    body = _b64(orjson.dumps(claims))
    return f"{head}.{body}.{_b64(sign(f'{head}.{body}'.encode()))}"


def wait_until_expired(token: str) -> None:
    """Sleep until ``token`` is past its ``exp`` and the services' leeway."""
    time.sleep(max(0.0, unverified_claims(token)["exp"] + LEEWAY_S + 0.5 - time.time()))


@functools.cache
def credentials(world: World) -> dict[str, str | None]:
    """Every caller of the matrix: its bearer token (None: no Authorization header).

    The valid ones sign in to Keycloak as the realm's users; the broken ones are real tokens
    made bad (expired, other audience, other issuer, tampered, escalated) or forged with what an
    attacker has (the provider's public key, a key of their own, no key at all).
    """
    kc = world.keycloak
    good = password_token(kc, "field")
    head, body, sig = good.split(".")
    header = jwt.get_unverified_header(good)
    claims = unverified_claims(good)
    escalated = _b64(orjson.dumps({**claims, "roles": ["admin"]}))
    certs = httpx.get(f"{kc.issuer('opsledger')}/protocol/openid-connect/certs", timeout=10)
    (published,) = [k for k in certs.json()["keys"] if k["kid"] == header["kid"]]
    public_pem = RSAAlgorithm.from_jwk(published).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    admin_claims = {**claims, "roles": ["admin"], "sub": "mallory"}
    return {
        "field": good,
        "field-other-op": password_token(kc, "field-other"),
        "supervisor": password_token(kc, "supervisor"),
        "supervisor-other-op": password_token(kc, "supervisor-other"),
        "auditor": password_token(kc, "auditor"),
        "admin": password_token(kc, "admin"),
        "none": None,
        "expired": world.short_lived,
        "alg-none": f"{_b64(orjson.dumps({**header, 'alg': 'none'}))}.{escalated}.",
        "wrong-audience": password_token(kc, "admin", client="other-app"),
        "untrusted-issuer": password_token(kc, "admin", realm="untrusted"),
        "wrong-key": jwt.encode(admin_claims, attacker, algorithm="RS256", headers=header),
        "tampered-signature": f"{head}.{body}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}",
        "escalated-payload": f"{head}.{escalated}.{sig}",
        "hs256-public-key": _forged(
            {**header, "alg": "HS256"},
            admin_claims,
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        ),
        "no-role": password_token(kc, "no-role"),
        "garbage": "not-a-jwt",
    }
