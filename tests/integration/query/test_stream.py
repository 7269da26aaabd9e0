"""The live stream: current totals first, then each committed change within a second."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.stack.devissuer.tokens import dev_token

from .ledger import Ledger, make_event

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)


async def sse_messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse a text/event-stream into {id, data, comments} messages."""
    message: dict[str, Any] = {"comments": []}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in message or message["comments"]:
                yield message
            message = {"comments": []}
        elif line.startswith(":"):
            message["comments"].append(line[1:].strip())
        else:
            field, _, value = line.partition(":")
            message[field] = value.removeprefix(" ")


async def next_data(messages: AsyncIterator[dict[str, Any]], seconds: float) -> dict[str, Any]:
    async with asyncio.timeout(seconds):
        async for m in messages:
            if "data" in m:
                return m
    raise AssertionError("stream ended")


async def test_first_the_totals_then_each_change_within_a_second(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    await ledger.submit([make_event(op_id, "warrant_executed", T0)], T0)
    url = f"/v1/operations/{op_id}/stream?group_by=area"
    async with client.stream("GET", url, headers=token("supervisor", op_id)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        messages = sse_messages(r)
        first = await next_data(messages, 5)
        body = json.loads(first["data"])
        assert body["metrics"]["warrants_executed"] == 1
        assert body["groups"][0]["area"] == "Buckinghamshire"
        assert int(first["id"]) == body["version"]

        for n in (2, 3):
            started = time.monotonic()
            await ledger.submit([make_event(op_id, "warrant_executed", T0)], T0)
            change = await next_data(messages, 1.0)
            assert time.monotonic() - started < 1.0
            assert json.loads(change["data"])["metrics"]["warrants_executed"] == n
            assert int(change["id"]) > int(first["id"])


async def test_a_reconnecting_client_is_not_sent_what_it_has(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    await ledger.submit([make_event(op_id, "school_visited", T0)], T0)
    url = f"/v1/operations/{op_id}/stream"
    headers = token("supervisor", op_id)
    async with client.stream("GET", url, headers=headers) as r:
        first = await next_data(sse_messages(r), 5)
    async with client.stream("GET", url, headers={**headers, "Last-Event-ID": first["id"]}) as r:
        messages = sse_messages(r)
        # Nothing new: only heartbeats (every second in these tests) until a change.
        async with asyncio.timeout(5):
            heartbeat = await anext(messages)
        assert "data" not in heartbeat and heartbeat["comments"] == ["heartbeat"]
        await ledger.submit([make_event(op_id, "school_visited", T0)], T0)
        change = await next_data(messages, 2)
        assert json.loads(change["data"])["metrics"]["schools_visited"] == 2


async def test_a_token_in_the_url_is_not_accepted(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    """Proxies log URLs: the stream takes its token from the Authorization header only."""
    await ledger.submit([make_event(op_id, "school_visited", T0)], T0)
    jwt = token("supervisor", op_id)["Authorization"].removeprefix("Bearer ")
    url = f"/v1/operations/{op_id}/stream"
    r = await client.get(url, params={"access_token": jwt})
    assert r.status_code == 401
    async with client.stream("GET", url, headers=token("supervisor", op_id)) as r:
        assert r.status_code == 200
        assert json.loads((await next_data(sse_messages(r), 5))["data"])["operation_id"] == op_id


async def test_the_stream_ends_when_the_token_does_and_resumes_by_last_event_id(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str
) -> None:
    """At `exp` the server says why and closes; a renewed token resumes with nothing missed."""
    await ledger.submit([make_event(op_id, "school_visited", T0)], T0)
    url = f"/v1/operations/{op_id}/stream"
    short = {"Authorization": "Bearer " + dev_token("supervisor", [op_id], ttl_s=3)}
    started = time.monotonic()
    async with client.stream("GET", url, headers=short) as r:
        assert r.status_code == 200
        messages = [m async for m in sse_messages(r)]  # the server ends the stream by itself
    lasted = time.monotonic() - started
    assert 1.5 < lasted < 8, lasted
    assert messages[-1]["event"] == "token-expired", messages[-1]
    assert json.loads(messages[-1]["data"])["reason"] == "token-expired"
    seen = [m for m in messages if "data" in m and "event" not in m]
    last_id = seen[-1]["id"]
    # While the client renews its token, a change is committed: the reconnect gets it at once.
    await ledger.submit([make_event(op_id, "school_visited", T0)], T0)
    renewed = {
        "Authorization": "Bearer " + dev_token("supervisor", [op_id], ttl_s=60),
        "Last-Event-ID": last_id,
    }
    async with client.stream("GET", url, headers=renewed) as r:
        first = await next_data(sse_messages(r), 5)
    assert int(first["id"]) > int(last_id)
    assert json.loads(first["data"])["metrics"]["schools_visited"] == 2
    # Nothing changed since this id: the reconnect sends no stale copy, only heartbeats.
    renewed["Last-Event-ID"] = first["id"]
    async with client.stream("GET", url, headers=renewed) as r:
        with pytest.raises(TimeoutError):
            await next_data(sse_messages(r), 2.5)


async def test_many_clients_share_one_listener(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token
) -> None:
    await ledger.submit([make_event(op_id, "warrant_executed", T0)], T0)
    url = f"/v1/operations/{op_id}/stream"
    headers = token("supervisor", op_id)
    before = await ledger.writer.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'opsledger-query%'"
    )

    async def watch() -> int:
        async with client.stream("GET", url, headers=headers) as r:
            messages = sse_messages(r)
            await next_data(messages, 5)
            ready.release()
            body = json.loads((await next_data(messages, 3))["data"])
            return int(body["metrics"]["warrants_executed"])

    ready = asyncio.Semaphore(0)
    watchers = [asyncio.create_task(watch()) for _ in range(20)]
    for _ in watchers:
        await asyncio.wait_for(ready.acquire(), 5)
    during = await ledger.writer.pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'opsledger-query%'"
    )
    await ledger.submit([make_event(op_id, "warrant_executed", T0)], T0)
    assert await asyncio.gather(*watchers) == [2] * 20
    # 20 live clients opened no connection of their own: at most the pool grew.
    assert during - before < 10


async def test_the_stream_survives_losing_the_listen_connection(
    client: httpx.AsyncClient, ledger: Ledger, op_id: str, token, query_app
) -> None:
    await ledger.submit([make_event(op_id, "warrant_executed", T0)], T0)
    hub = query_app.state.hub
    url = f"/v1/operations/{op_id}/stream"
    async with client.stream("GET", url, headers=token("supervisor", op_id)) as r:
        messages = sse_messages(r)
        await next_data(messages, 5)
        lost_pid = hub.backend_pid
        assert lost_pid is not None
        # PostgreSQL drops the listening connection (as on a restart or a failover).
        await ledger.writer.pool.execute("SELECT pg_terminate_backend($1)", lost_pid)
        async with asyncio.timeout(10):
            while not (hub.connected and hub.backend_pid not in (None, lost_pid)):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        # A change committed after the reconnect still reaches the client that stayed connected.
        await ledger.submit([make_event(op_id, "warrant_executed", T0)], T0)
        change = await next_data(messages, 2)
        assert json.loads(change["data"])["metrics"]["warrants_executed"] == 2
    ready = await client.get("/readyz")
    assert ready.json()["live_updates"] is True
