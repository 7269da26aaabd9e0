"""POST /v1/events with a fake producer: what a field app sees, and what would go to Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import orjson

from schemas.parsing import event_to_dict, parse_event
from services.ingest.settings import IngestSettings
from services.stack.devissuer.tokens import dev_token

from .conftest import FakeProducer, make_event

PROBLEM = "application/problem+json"


async def test_accepted_event_is_one_submission_keyed_by_operation(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str], op: str
) -> None:
    event = make_event(op)
    before = datetime.now(UTC)
    r = await client.post("/v1/events", json=event, headers=auth)
    assert r.status_code == 202
    assert r.json() == {"event_id": event["event_id"], "partition": len(op) % 12, "offset": 0}
    [(key, _)] = producer.sent
    assert key == op.encode()
    [record] = producer.records()
    assert record["operation_id"] == op
    assert record["principal"] == "pc-4101"
    assert before <= datetime.fromisoformat(record["recorded_at"]) <= datetime.now(UTC)
    assert record["events"] == [event_to_dict(parse_event(event))]


async def test_server_fields_from_a_client_are_refused_by_name(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str], op: str
) -> None:
    for name in ("recorded_at", "principal"):
        event = make_event(op, **{name: "2026-11-29T10:00:00+00:00"})
        r = await client.post("/v1/events", json=event, headers=auth)
        assert r.status_code == 422
        assert r.headers["content-type"] == PROBLEM
        assert [e["path"] for e in r.json()["errors"]] == [name]
    assert producer.sent == []


async def test_occurred_at_too_far_in_the_future_is_422(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str], op: str
) -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    late = (datetime.now(UTC) + timedelta(minutes=6)).isoformat()
    assert (
        await client.post("/v1/events", json=make_event(op, occurred_at=soon), headers=auth)
    ).status_code == 202
    r = await client.post("/v1/events", json=make_event(op, occurred_at=late), headers=auth)
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == ["occurred_at"]
    assert len(producer.sent) == 1


async def test_contract_errors_name_each_field(
    client: httpx.AsyncClient, auth: dict[str, str], op: str
) -> None:
    event = make_event(op, schema_version=1)
    del event["actor"]
    event["location"] = {"area": ""}
    event["colour"] = "blue"
    r = await client.post("/v1/events", json=event, headers=auth)
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {"actor", "location.area", "colour"}


async def test_authentication_and_scope(
    client: httpx.AsyncClient, settings: IngestSettings, op: str
) -> None:
    event = make_event(op)
    assert (await client.post("/v1/events", json=event)).status_code == 401
    bad = {"Authorization": "Bearer not-a-jwt"}
    assert (await client.post("/v1/events", json=event, headers=bad)).status_code == 401
    supervisor = dev_token(role="supervisor", operations=[op])
    r = await client.post(
        "/v1/events", json=event, headers={"Authorization": f"Bearer {supervisor}"}
    )
    assert r.status_code == 403
    other = dev_token(role="field", operations=["some-other-op"])
    r = await client.post("/v1/events", json=event, headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 403
    assert r.headers["content-type"] == PROBLEM
    assert [e["path"] for e in r.json()["errors"]] == ["operation_id"]


async def test_wrong_content_type_is_415(
    client: httpx.AsyncClient, auth: dict[str, str], op: str
) -> None:
    body = orjson.dumps(make_event(op))
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = dict(auth) | ({"content-type": ctype} if ctype else {})
        r = await client.post("/v1/events", content=body, headers=headers)
        assert r.status_code == 415, ctype
        assert r.headers["content-type"] == PROBLEM
    headers = auth | {"content-type": "application/json; charset=utf-8"}
    assert (await client.post("/v1/events", content=body, headers=headers)).status_code == 202


async def test_malformed_json_is_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    headers = auth | {"content-type": "application/json"}
    for body in (b"{", b"", b"\xff\xfe", b'{"a": 1,}'):
        r = await client.post("/v1/events", content=body, headers=headers)
        assert r.status_code == 400, body
        assert r.headers["content-type"] == PROBLEM


async def test_json_that_is_not_an_event_object_is_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    headers = auth | {"content-type": "application/json"}
    for body in (b"[]", b"3", b'"x"', b"null", b"{}"):
        r = await client.post("/v1/events", content=body, headers=headers)
        assert r.status_code == 422, body


async def test_body_over_the_limit_is_413_before_parsing(
    client: httpx.AsyncClient, settings: IngestSettings, auth: dict[str, str]
) -> None:
    # Not even JSON: a 413 proves nothing tried to parse it.
    body = b"x" * (settings.max_body_bytes + 1)
    headers = auth | {"content-type": "application/json"}
    r = await client.post("/v1/events", content=body, headers=headers)
    assert r.status_code == 413
    assert r.headers["content-type"] == PROBLEM

    async def chunks():  # no Content-Length: the streamed size is counted
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b"x" * 1024

    r = await client.post("/v1/events/batch", content=chunks(), headers=headers)
    assert r.status_code == 413


async def test_broker_down_is_503_with_retry_after_then_accepts_again(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str], op: str
) -> None:
    producer.down = True
    r = await client.post("/v1/events", json=make_event(op), headers=auth)
    assert r.status_code == 503
    assert r.headers["content-type"] == PROBLEM
    assert int(r.headers["retry-after"]) >= 1
    assert (await client.get("/readyz")).status_code == 503
    producer.down = False
    assert (await client.post("/v1/events", json=make_event(op), headers=auth)).status_code == 202
    assert (await client.get("/readyz")).status_code == 200
