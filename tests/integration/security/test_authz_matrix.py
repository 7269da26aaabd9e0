"""Who may call what: every caller against every endpoint, with the exact status expected.

Callers: each role with a token scoped to the operation, the same roles scoped to another
operation, no token, and forged or broken tokens (expired, alg=none, wrong audience/issuer/key,
tampered signature, escalated payload, other HMAC size, unknown role, garbage).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from services.common.auth import issue_token
from services.common.settings import CommonSettings

from .conftest import World, credentials, make_event

pytestmark = pytest.mark.integration

VALID = ["field", "field-other-op", "supervisor", "supervisor-other-op", "auditor", "admin"]
BROKEN = [
    "none", "expired", "alg-none", "wrong-audience", "wrong-issuer", "wrong-key",
    "tampered-signature", "escalated-payload", "hs512", "unknown-role", "garbage",
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
        ("query", "GET", "/v1/audit/access-log", None, AUDIT),
        ("query", "GET", "/v1/keys", None, PUBLIC),
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


async def test_stream_query_token_is_checked_like_a_header(
    world: World, query: httpx.AsyncClient
) -> None:
    """EventSource's ?access_token= gets the same refusals as the Authorization header."""
    tokens = credentials(world)
    path = f"/v1/operations/{world.op}/stream"
    for caller, expected in [("expired", 401), ("alg-none", 401), ("tampered-signature", 401),
                             ("field", 403), ("supervisor-other-op", 403)]:  # fmt: skip
        resp = await query.get(path, params={"access_token": tokens[caller]})
        assert resp.status_code == expected, (caller, resp.status_code, resp.text)


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
    s = CommonSettings()
    run = secrets.token_hex(4)
    subjects = {role: f"logrule-{role}-{run}" for role in ("supervisor", "auditor", "admin")}
    op = world.op
    for role, subject in subjects.items():
        token = issue_token(s, role=role, operations=[op], subject=subject)  # type: ignore[arg-type]
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
    """The query service remembers verified tokens; never past their expiry (+5 s leeway)."""
    token = issue_token(CommonSettings(), role="auditor", ttl_s=1)
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        await query.get(f"/v1/operations/{world.op}/totals", headers=headers)
    ).status_code == 200
    expires = time.time() + 1
    await asyncio.sleep(max(0.0, expires - time.time()) + 6.5)
    resp = await query.get(f"/v1/operations/{world.op}/totals", headers=headers)
    assert resp.status_code == 401, resp.text
