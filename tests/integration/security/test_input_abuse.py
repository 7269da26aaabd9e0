"""Hostile bodies against ingest: each gets a precise 4xx problem, never a 500, nothing written.

Oversized bodies (declared and streamed), deeply nested JSON, huge strings, invalid UTF-8,
non-JSON and non-object bodies, and mass assignment of the fields only the server may set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from services.common.oidc import unverified_claims

from .conftest import MAX_BODY, World, credentials, make_event

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


def _auth(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials(world)['field']}", **JSON}


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    return body


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
async def test_oversized_body_declared_is_413(
    world: World, ingest: httpx.AsyncClient, path: str
) -> None:
    body = b'{"events": ["' + b"x" * (MAX_BODY + 10) + b'"]}'
    _problem(await ingest.post(path, content=body, headers=_auth(world)), 413)


async def test_oversized_body_streamed_without_length_is_413(
    world: World, ingest: httpx.AsyncClient
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 8):
            yield b" " * 1024

    resp = await ingest.post("/v1/events", content=chunks(), headers=_auth(world))
    _problem(resp, 413)


@pytest.mark.parametrize("depth", [100, 2_000, 20_000])
@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
async def test_deeply_nested_json_is_refused(
    world: World, ingest: httpx.AsyncClient, path: str, depth: int
) -> None:
    resp = await ingest.post(path, content=_nested(depth), headers=_auth(world))
    assert resp.status_code in (400, 413, 422), resp.text[:300]
    _problem(resp, resp.status_code)


@pytest.mark.parametrize("depth", [50, 500])
async def test_nested_payload_inside_a_valid_event_is_422(
    world: World, ingest: httpx.AsyncClient, depth: int
) -> None:
    """An unknown nested field: named when shallow; past the parser's depth limit, still 422."""
    event = make_event(world.op)
    raw = orjson.dumps(event)[:-1] + b', "extra": ' + _nested(depth) + b"}"
    body = _problem(await ingest.post("/v1/events", content=raw, headers=_auth(world)), 422)
    if depth == 50:
        assert any(e["path"] == "extra" for e in body["errors"]), body
    else:
        assert "recursion limit" in str(body["errors"]), body


@pytest.mark.parametrize(
    "field", ["actor.officer_id", "actor.unit", "location.area", "payload.warrant_ref"]
)
async def test_huge_strings_are_422_naming_the_field(
    world: World, ingest: httpx.AsyncClient, field: str
) -> None:
    event = make_event(world.op)
    outer, inner = field.split(".")
    event[outer][inner] = "A" * 50_000
    body = _problem(await ingest.post("/v1/events", json=event, headers=_auth(world)), 422)
    assert any(e["path"] == field for e in body["errors"]), body["errors"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "\xff\xfe"}',
        b'{"events": [{"type": "warrant_executed\xc3\x28"}]}',
        b"\xed\xa0\x80",  # a UTF-16 surrogate encoded as UTF-8 (invalid)
    ],
    ids=["bad-start-byte", "bad-continuation", "surrogate"],
)
@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
async def test_invalid_utf8_is_400(
    world: World, ingest: httpx.AsyncClient, path: str, raw: bytes
) -> None:
    _problem(await ingest.post(path, content=raw, headers=_auth(world)), 400)


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"NaN", b'{"a": Infinity}', b"[1, 2", b"\x00"],
    ids=["empty", "text", "nan", "infinity", "truncated", "nul"],
)
async def test_not_json_is_400(world: World, ingest: httpx.AsyncClient, raw: bytes) -> None:
    _problem(await ingest.post("/v1/events", content=raw, headers=_auth(world)), 400)


@pytest.mark.parametrize("raw", [b"[]", b"null", b"42", b'"event"', b"[{}]"])
async def test_json_that_is_not_an_event_is_422(
    world: World, ingest: httpx.AsyncClient, raw: bytes
) -> None:
    _problem(await ingest.post("/v1/events", content=raw, headers=_auth(world)), 422)


async def test_wrong_content_type_is_415(world: World, ingest: httpx.AsyncClient) -> None:
    headers = {**_auth(world), "Content-Type": "text/plain"}
    raw = orjson.dumps(make_event(world.op))
    _problem(await ingest.post("/v1/events", content=raw, headers=headers), 415)


SERVER_FIELDS = {
    "recorded_at": "2020-01-01T00:00:00Z",
    "principal": "admin",
    "seq": 1,
    "hash": "0" * 64,
    "prev_hash": "0" * 64,
    "content_hash": "0" * 64,
    "kafka_offset": 0,
    "applied_at": "2020-01-01T00:00:00Z",
}


@pytest.mark.parametrize("name", sorted(SERVER_FIELDS))
async def test_mass_assignment_of_a_server_field_is_refused(
    world: World, ingest: httpx.AsyncClient, name: str
) -> None:
    """A client may not set what the server stamps (or stores): 422 naming the field."""
    event = make_event(world.op, **{name: SERVER_FIELDS[name]})
    body = _problem(await ingest.post("/v1/events", json=event, headers=_auth(world)), 422)
    assert any(e["path"] == name for e in body["errors"]), body["errors"]
    # The same inside a batch: that item rejected, naming the field; the clean one accepted.
    clean = make_event(world.op)
    resp = await ingest.post(
        "/v1/events/batch", json={"events": [clean, event]}, headers=_auth(world)
    )
    assert resp.status_code == 207, resp.text
    bad = resp.json()["results"][1]
    assert bad["status"] == "rejected" and any(e["path"] == name for e in bad["errors"]), bad


async def test_principal_comes_from_the_token_not_the_body(
    world: World, ingest: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    """What lands on the log carries the token's subject and the server's clock."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    event = make_event(world.op)
    resp = await ingest.post("/v1/events", json=event, headers=_auth(world))
    assert resp.status_code == 202, resp.text
    placed = resp.json()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(world.topic, placed["partition"])
        consumer.assign([tp])
        consumer.seek(tp, placed["offset"])
        record = await consumer.getone()
    finally:
        await consumer.stop()
    doc = orjson.loads(record.value)
    # The subject Keycloak put in the token (its user id), whatever the body claimed.
    assert doc["principal"] == unverified_claims(credentials(world)["field"])["sub"]
    assert [e["event_id"] for e in doc["events"]] == [event["event_id"]]
    assert "recorded_at" not in doc["events"][0] and "principal" not in doc["events"][0]
