"""Text PostgreSQL cannot store (NUL, other control characters, lone surrogates) is refused at
the door with a 422 naming the field, so it never reaches the log and never stalls the ledger."""

from __future__ import annotations

import httpx
import orjson
import pytest

from .conftest import FakeProducer, make_event


@pytest.mark.parametrize("field", ["officer_id", "unit"])
async def test_nul_in_actor_is_422_naming_the_field(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str], op: str, field: str
) -> None:
    event = make_event(op)
    event["actor"][field] = "PC\x004101"
    r = await client.post("/v1/events", json=event, headers=auth)
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json()["errors"]] == [f"actor.{field}"]
    assert producer.sent == []


async def test_nul_in_a_batch_item_refuses_that_item_only(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str], op: str
) -> None:
    bad, good = make_event(op), make_event(op)
    bad["actor"]["unit"] = "Stronghold\x00"
    r = await client.post("/v1/events/batch", json={"events": [bad, good]}, headers=auth)
    assert r.status_code == 207, r.text
    first, second = r.json()["results"]
    assert [e["path"] for e in first["errors"]] == ["actor.unit"]
    assert second["status"] == "accepted"
    [record] = producer.records()
    assert [e["event_id"] for e in record["events"]] == [good["event_id"]]


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
async def test_escaped_lone_surrogate_is_422_naming_the_field(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str], op: str, path: str
) -> None:
    event = make_event(op)
    event["payload"]["premises"] = "SURROGATE"
    body = orjson.dumps(event if path == "/v1/events" else {"events": [event]})
    body = body.replace(b"SURROGATE", b"flat \\ud800 B")
    headers = {**auth, "Content-Type": "application/json"}
    r = await client.post(path, content=body, headers=headers)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"] if path == "/v1/events" else r.json()["results"][0]["errors"]
    assert [e["path"] for e in errors] == ["payload.premises"]
    assert "surrogate" in errors[0]["message"]
    assert producer.sent == []
