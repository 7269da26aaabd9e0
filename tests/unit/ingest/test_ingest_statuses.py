"""Ingest's view of operation statuses (from the compacted topic) and what it refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from services.common.operations import OperationRecord, new_record
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from services.ingest.statuses import FixedStatuses, StatusMap
from services.stack.devissuer.tokens import dev_token, dev_verifier

from .conftest import FakeProducer, make_event

T0 = datetime(2026, 11, 23, 6, tzinfo=UTC)


def _record(op: str, closed: bool = False) -> OperationRecord:
    r = new_record(op, "Week of action", ["Oxfordshire"], T0, T0 + timedelta(days=6), by="adm")
    return r.close("adm", T0 + timedelta(days=7)) if closed else r


def test_the_latest_record_of_a_key_wins_and_a_tombstone_forgets() -> None:
    m = StatusMap()
    m.apply(b"op-a", _record("op-a").model_dump_json().encode())
    assert m.closed("op-a") is None
    m.apply(b"op-a", _record("op-a", closed=True).model_dump_json().encode())
    assert m.closed("op-a") is not None
    m.apply(b"op-a", None)
    assert m.closed("op-a") is None and "op-a" not in m.records


def test_an_unreadable_record_is_counted_and_changes_nothing() -> None:
    m = StatusMap()
    m.apply(b"op-a", _record("op-a", closed=True).model_dump_json().encode())
    m.apply(b"op-a", b"{not json")
    m.apply(b"op-b", b'{"operation_id": "op-b"}')
    assert m.unreadable == 2 and m.closed("op-a") is not None and m.closed("op-b") is None


def test_never_created_is_not_closed() -> None:
    assert StatusMap().closed("op-never") is None


CLOSED_OP = "op-closed-unit"
OPEN_OP = "op-open-unit"


@pytest.fixture
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
async def client(producer: FakeProducer) -> AsyncIterator[httpx.AsyncClient]:
    statuses = FixedStatuses([_record(CLOSED_OP, closed=True), _record(OPEN_OP)])
    app: FastAPI = create_app(IngestSettings(env="test"), producer, statuses)
    app.state.ingest.verifier = dev_verifier()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as c:
            yield c


def _auth(role: str) -> dict[str, str]:
    ops = [CLOSED_OP, OPEN_OP] if role == "field" else []
    return {"Authorization": f"Bearer {dev_token(role=role, operations=ops, subject='u-1')}"}


def _void(op: str, reason: str = "entered twice") -> dict[str, object]:
    event = make_event(op)
    event.update(
        type="event_voided",
        payload={"voided_event_id": "7d0b5f3e-1c2a-4b7e-9f00-000000000001", "reason": reason},
    )
    return event


async def test_a_closed_operation_refuses_a_field_event_with_409_naming_it(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    resp = await client.post("/v1/events", json=make_event(CLOSED_OP), headers=_auth("field"))
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert body["type"].endswith("/operation-closed") and body["operation_id"] == CLOSED_OP
    assert CLOSED_OP in body["detail"] and not producer.sent


async def test_an_open_or_never_created_operation_takes_events(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    for op in (OPEN_OP, "op-never-made"):
        headers = {"Authorization": f"Bearer {dev_token(role='field', operations=[op])}"}
        resp = await client.post("/v1/events", json=make_event(op), headers=headers)
        assert resp.status_code == 202, resp.text
    assert len(producer.sent) == 2


async def test_an_admin_void_with_a_reason_is_taken_after_close_and_carries_the_role(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    resp = await client.post("/v1/events", json=_void(CLOSED_OP), headers=_auth("admin"))
    assert resp.status_code == 202, resp.text
    assert producer.records()[0]["role"] == "admin"


async def test_a_field_void_after_close_is_refused(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/events", json=_void(CLOSED_OP), headers=_auth("field"))
    assert resp.status_code == 409, resp.text


async def test_an_admin_void_with_a_blank_reason_after_close_is_refused(
    client: httpx.AsyncClient,
) -> None:
    resp = await client.post("/v1/events", json=_void(CLOSED_OP, "   "), headers=_auth("admin"))
    assert resp.status_code == 409, resp.text  # the contract takes a blank reason; ingest not


async def test_an_admin_records_corrections_only(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/events", json=make_event(OPEN_OP), headers=_auth("admin"))
    assert resp.status_code == 403, resp.text
    assert resp.json()["errors"][0]["path"] == "type"


async def test_a_batch_of_closed_operations_only_is_409_and_mixed_is_207(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    only = {"events": [make_event(CLOSED_OP), make_event(CLOSED_OP)]}
    resp = await client.post("/v1/events/batch", json=only, headers=_auth("field"))
    assert resp.status_code == 409, resp.text
    assert resp.json()["operation_ids"] == [CLOSED_OP]
    mixed = {"events": [make_event(OPEN_OP), make_event(CLOSED_OP)]}
    resp = await client.post("/v1/events/batch", json=mixed, headers=_auth("field"))
    assert resp.status_code == 207, resp.text
    reasons = [r.get("reason") for r in resp.json()["results"]]
    assert reasons == [None, "operation-closed"]
    assert len(producer.sent) == 1


async def test_readiness_shows_the_operations_view(client: httpx.AsyncClient) -> None:
    resp = await client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["operations"]["state"] == "following"
