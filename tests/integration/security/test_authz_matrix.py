"""Who may call what: every caller against every endpoint, with the exact status expected.

Callers sign in to a real OpenID Connect provider (Keycloak): each role with a token scoped to
the operation, the same roles scoped to another operation, no token, and broken or forged
tokens (expired, alg=none, another application's audience, an untrusted issuer, an attacker's
key, tampered signature, escalated payload, HS256 keyed with the provider's public key, a user
with no opsledger role, garbage). Then: a rotated key, a withdrawn key, and a token that expires
while its stream is open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

from services.common.oidc import unverified_claims
from services.stack.keycloak import SHORT_CLIENT, KeycloakAdmin, password_token

from .conftest import JWKS_REFRESH_S, LEEWAY_S, World, credentials, make_event

pytestmark = pytest.mark.integration

VALID = ["field", "field-other-op", "supervisor", "supervisor-other-op", "auditor", "admin"]
BROKEN = [
    "none", "expired", "alg-none", "wrong-audience", "untrusted-issuer", "wrong-key",
    "tampered-signature", "escalated-payload", "hs256-public-key", "no-role", "garbage",
]  # fmt: skip

WRITE = dict(zip(VALID, [202, 403, 403, 403, 403, 403], strict=True))
LIST = dict(zip(VALID, [403, 403, 200, 200, 200, 200], strict=True))
READ = dict(zip(VALID, [403, 403, 200, 403, 200, 200], strict=True))
AUDIT = dict(zip(VALID, [403, 403, 403, 403, 200, 200], strict=True))
# Transparency log: the world's operation has a tree (2 events) but no signed checkpoint yet,
# and the inclusion proof asks for an event it does not have: allowed callers get a 404.
READ_404 = dict(zip(VALID, [403, 403, 404, 403, 404, 404], strict=True))
AUDIT_404 = dict(zip(VALID, [403, 403, 403, 403, 404, 404], strict=True))
PUBLIC = dict.fromkeys(VALID + BROKEN, 200)  # the ledger's public keys
# Operations as records: only an admin creates (201) and closes (an operation never created:
# 404); readers see the world's operation, which was never created (implicit): 404.
CREATE = dict(zip(VALID, [403, 403, 403, 403, 403, 201], strict=True))
CLOSE = dict(zip(VALID, [403, 403, 403, 403, 403, 404], strict=True))
# Every refusal, wrong role or wrong operation, ingest or query: one problem type.
FORBIDDEN_TYPE = "https://opsledger.dev/problems/forbidden"
# Allowed stream cells never end (text/event-stream); tests/integration/query covers them.
STREAM = dict(zip(VALID, [403, 403, None, 403, None, None], strict=True))


def _endpoints(w: World) -> list[tuple[str, str, str, Callable[[], Any] | None, dict[str, Any]]]:
    """(app, method, path, body, expected status per valid caller)."""
    op = w.op
    return [
        ("ingest", "POST", "/v1/events", lambda: make_event(op), WRITE),
        ("ingest", "POST", "/v1/events/batch", lambda: {"events": [make_event(op)]}, WRITE),
        ("query", "GET", "/v1/operations", None, LIST),
        ("query", "GET", f"/v1/operations/{op}/totals", None, READ),
        ("query", "GET", f"/v1/operations/{op}/totals?group_by=area", None, READ),
        ("query", "GET", f"/v1/operations/{op}/summary", None, READ),
        ("query", "GET", f"/v1/operations/{op}/stream", None, STREAM),
        ("query", "GET", f"/v1/operations/{op}/events", None, AUDIT),
        ("query", "GET", f"/v1/operations/{op}/verify", None, AUDIT),
        ("query", "GET", f"/v1/operations/{op}/export", None, AUDIT),
        ("query", "GET", f"/v1/operations/{op}/late-events", None, AUDIT),
        ("query", "GET", "/v1/audit/access-log", None, AUDIT),
        ("query", "GET", "/v1/keys", None, PUBLIC),
        ("query", "GET", f"/v1/operations/{op}", None, READ_404),
        ("query", "POST", "/v1/operations", lambda: _new_operation(w), CREATE),
        ("query", "POST", f"/v1/operations/{w.other}-never/close", None, CLOSE),
        ("query", "GET", f"/v1/operations/{op}/checkpoint", None, READ_404),
        ("query", "GET", f"/v1/operations/{op}/proof/consistency?from=1", None, READ),
        (
            "query",
            "GET",
            f"/v1/operations/{op}/proof/inclusion?event_id=00000000-0000-4000-8000-000000000000",
            None,
            AUDIT_404,
        ),
    ]


def _new_operation(w: World) -> dict[str, Any]:
    return {
        "operation_id": f"{w.op}-made"[:60],
        "title": "Made by the matrix",
        "planned_start": "2026-11-23T06:00:00Z",
        "planned_end": "2026-11-29T22:00:00Z",
    }


def _cells(w: World) -> list[tuple[str, str, str, Any, str, int | None]]:
    cells = []
    for app, method, path, body, expected in _endpoints(w):
        for caller in VALID + BROKEN:
            cells.append((app, method, path, body, caller, expected.get(caller, 401)))
    return cells


async def test_authorization_matrix(
    world: World, ingest: httpx.AsyncClient, query: httpx.AsyncClient
) -> None:
    """Every cell at once, so a failure lists every wrong cell, not just the first."""
    tokens = credentials(world)
    clients = {"ingest": ingest, "query": query}
    wrong: list[str] = []
    checked = 0
    for app, method, path, body, caller, expected in _cells(world):
        if expected is None:
            continue
        token = tokens[caller]
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        json_body = body() if body is not None else None
        resp = await clients[app].request(method, path, json=json_body, headers=headers)
        checked += 1
        if resp.status_code != expected:
            wrong.append(f"{caller:20} {method} {path}: {resp.status_code}, expected {expected}")
        elif expected >= 400:
            assert resp.headers["content-type"].startswith("application/problem+json"), path
            if expected == 401:
                assert "www-authenticate" in resp.headers or app == "query", (caller, path)
            if expected == 403 and resp.json()["type"] != FORBIDDEN_TYPE:
                wrong.append(f"{caller:20} {method} {path}: 403 of type {resp.json()['type']}")
    assert not wrong, "\n".join(wrong)
    assert checked == len(_cells(world)) - 3  # three allowed stream cells are not polled here


async def test_a_token_in_the_stream_url_is_refused(world: World, query: httpx.AsyncClient) -> None:
    """No token in any URL: the stream ignores ?access_token= however good the token."""
    tokens = credentials(world)
    path = f"/v1/operations/{world.op}/stream"
    for caller in ("supervisor", "admin"):
        resp = await query.get(path, params={"access_token": tokens[caller]})
        assert resp.status_code == 401, (caller, resp.status_code, resp.text)


async def test_supervisor_lists_only_its_operations(world: World, query: httpx.AsyncClient) -> None:
    tokens = credentials(world)
    for caller, visible in [("supervisor", True), ("supervisor-other-op", False)]:
        resp = await query.get(
            "/v1/operations", headers={"Authorization": f"Bearer {tokens[caller]}"}
        )
        listed = {o["operation_id"] for o in resp.json()["operations"]}
        assert (world.op in listed) is visible, (caller, listed)


async def test_field_batch_cannot_smuggle_another_operation(
    world: World, ingest: httpx.AsyncClient
) -> None:
    """A batch mixing the token's operation with another: only the in-scope item is accepted."""
    token = credentials(world)["field"]
    events = [make_event(world.op), make_event(world.other)]
    resp = await ingest.post(
        "/v1/events/batch", json={"events": events}, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 207, resp.text
    statuses = [(r["status"], r.get("reason")) for r in resp.json()["results"]]
    assert statuses == [("accepted", None), ("rejected", "forbidden")]
    resp = await ingest.post(
        "/v1/events/batch",
        json={"events": [make_event(world.other)]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (resp.status_code, resp.json()["type"]) == (403, FORBIDDEN_TYPE), resp.text


async def test_access_log_rule_auditor_and_admin_reads_logged_supervisor_not(
    world: World, query: httpx.AsyncClient, database_url: str
) -> None:
    """One rule for whose reads are logged: every consultation by an auditor or an admin, on
    the query routes and the audit routes alike; a supervisor's reads of its own operation not."""
    tokens = {role: credentials(world)[role] for role in ("supervisor", "auditor", "admin")}
    # The principal is the subject Keycloak puts in each user's tokens.
    subjects = {role: unverified_claims(token)["sub"] for role, token in tokens.items()}
    op = world.op
    for role, token in tokens.items():
        headers = {"Authorization": f"Bearer {token}"}
        paths = [f"/v1/operations/{op}/totals", f"/v1/operations/{op}/summary", "/v1/operations"]
        if role != "supervisor":
            paths.append(f"/v1/operations/{op}/verify")
        for path in paths:
            assert (await query.get(path, headers=headers)).status_code == 200, (role, path)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT principal, action FROM audit.access_log WHERE principal = ANY($1::text[])",
            list(subjects.values()),
        )
    finally:
        await conn.close()
    logged = {(r["principal"], r["action"]) for r in rows}
    for role in ("auditor", "admin"):
        expected = {(subjects[role], a) for a in ("totals", "summary", "operations", "verify")}
        assert expected <= logged, (role, logged)
    assert not {p for p, _ in logged} & {subjects["supervisor"]}, logged


async def test_token_expiring_while_cached_is_refused(
    world: World, query: httpx.AsyncClient
) -> None:
    """The verifier remembers verified tokens; never past their expiry (+ the leeway)."""
    token = password_token(world.keycloak, "auditor", client=SHORT_CLIENT)
    headers = {"Authorization": f"Bearer {token}"}
    resp = await query.get(f"/v1/operations/{world.op}/totals", headers=headers)
    assert resp.status_code == 200, resp.text
    await asyncio.sleep(unverified_claims(token)["exp"] + LEEWAY_S + 0.5 - time.time())
    resp = await query.get(f"/v1/operations/{world.op}/totals", headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.json()["detail"] == "token expired"


async def test_an_open_stream_ends_when_its_token_expires(
    world: World, query: httpx.AsyncClient
) -> None:
    """A real provider's 5-second token: totals first, then `token-expired`, then the end."""
    token = password_token(world.keycloak, "supervisor", client=SHORT_CLIENT)
    exp = unverified_claims(token)["exp"]
    path = f"/v1/operations/{world.op}/stream"
    lines: list[str] = []
    async with asyncio.timeout(exp - time.time() + 10):
        async with query.stream("GET", path, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status_code == 200
            lines = [line async for line in resp.aiter_lines()]  # ends by itself
    ended = time.time()
    assert any(line.startswith("data: {") for line in lines)
    assert "event: token-expired" in lines
    assert lines[lines.index("event: token-expired") + 1].startswith('data: {"reason":')
    assert exp - 1 <= ended <= exp + 5, (exp, ended)


async def test_a_rotated_key_is_trusted_without_a_restart_and_a_withdrawn_one_is_not(
    world: World, query: httpx.AsyncClient
) -> None:
    """The provider rotates its signing key while the app runs: tokens signed with the new key
    work at once; when the provider withdraws that key, its tokens stop at the next refresh."""
    admin = KeycloakAdmin(world.keycloak)
    url = f"/v1/operations/{world.op}/totals"
    kid = None
    try:
        before = credentials(world)["auditor"]
        assert (await query.get(url, headers={"Authorization": f"Bearer {before}"})).is_success
        kid = admin.rotate_key("opsledger")
        token = password_token(world.keycloak, "auditor")
        assert jwt.get_unverified_header(token)["kid"] == kid
        await asyncio.sleep(1.1)  # the verifier's least interval between two key reads
        resp = await query.get(url, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.text
        # The old key is still published: tokens signed before the rotation still work.
        assert (await query.get(url, headers={"Authorization": f"Bearer {before}"})).is_success
    finally:
        if kid is not None:
            admin.remove_key("opsledger", kid)
        admin.close()
    deadline = time.monotonic() + JWKS_REFRESH_S * 3
    status = 200
    while status == 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        status = (await query.get(url, headers={"Authorization": f"Bearer {token}"})).status_code
    assert status == 401
