"""POST /v1/events/batch: per-item results in order, one record per operation."""

from __future__ import annotations

import httpx
import pytest

from services.common.wire import decode_submission
from services.ingest.intake import encode_records
from services.ingest.settings import IngestSettings
from services.stack.devissuer.tokens import dev_token

from .conftest import FakeProducer, make_event


@pytest.fixture
def two_ops(settings: IngestSettings, op: str) -> tuple[str, str, dict[str, str]]:
    other = op + "-b"
    token = dev_token(role="field", operations=[op, other], subject="pc-7")
    return op, other, {"Authorization": f"Bearer {token}"}


async def test_mixed_batch_answers_each_item_in_order(
    client: httpx.AsyncClient, producer: FakeProducer, two_ops: tuple[str, str, dict[str, str]]
) -> None:
    op_a, op_b, auth = two_ops
    a1, b1, a2 = (
        make_event(op_a),
        make_event(op_b, "school_visited"),
        make_event(op_a, "arrest_made"),
    )
    bad = make_event(op_a, recorded_at="2026-11-29T10:00:00+00:00")
    foreign = make_event("not-mine-op")
    events = [a1, bad, b1, foreign, "nope", a2]
    r = await client.post("/v1/events/batch", json={"events": events}, headers=auth)
    assert r.status_code == 207
    body = r.json()
    assert (body["accepted"], body["rejected"], body["unavailable"]) == (3, 3, 0)
    statuses = [(i["index"], i["status"], i.get("reason")) for i in body["results"]]
    assert statuses == [
        (0, "accepted", None), (1, "rejected", "contract"), (2, "accepted", None),
        (3, "rejected", "forbidden"), (4, "rejected", "contract"), (5, "accepted", None),
    ]  # fmt: skip
    assert body["results"][1]["errors"] == [
        {"path": "recorded_at", "message": "set by the server; a client must not send it"}
    ]
    assert body["results"][3]["errors"][0]["path"] == "operation_id"
    # One record per operation, holding that operation's accepted events in input order.
    assert [key for key, _ in producer.sent] == [op_a.encode(), op_b.encode()]
    sub_a, sub_b = (decode_submission(v) for _, v in producer.sent)
    assert [e["event_id"] for e in sub_a.events] == [a1["event_id"], a2["event_id"]]
    assert [e["event_id"] for e in sub_b.events] == [b1["event_id"]]
    assert sub_a.principal == sub_b.principal == "pc-7"
    assert sub_a.recorded_at == sub_b.recorded_at
    item0, item5 = body["results"][0], body["results"][5]
    assert (item0["offset"], item0["record_index"]) == (0, 0)
    assert (item5["offset"], item5["record_index"]) == (0, 1)
    assert body["results"][2]["offset"] == 1


async def test_all_accepted_is_202(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str], op: str
) -> None:
    events = [make_event(op) for _ in range(20)]
    r = await client.post("/v1/events/batch", json={"events": events}, headers=auth)
    assert r.status_code == 202
    assert r.json()["accepted"] == 20
    assert len(producer.sent) == 1


async def test_nothing_accepted_is_422_with_per_item_results(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str], op: str
) -> None:
    events = [make_event(op, principal="me"), make_event(op, type="bogus")]
    r = await client.post("/v1/events/batch", json={"events": events}, headers=auth)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert [e["path"] for e in body["errors"]] == ["events.0.principal", "events.1.type"]
    assert [i["status"] for i in body["results"]] == ["rejected", "rejected"]
    assert producer.sent == []


async def test_every_operation_out_of_scope_is_403(
    client: httpx.AsyncClient, producer: FakeProducer, auth: dict[str, str]
) -> None:
    events = [make_event("alien-op"), make_event("alien-op-2")]
    r = await client.post("/v1/events/batch", json={"events": events}, headers=auth)
    assert r.status_code == 403
    assert [i["reason"] for i in r.json()["results"]] == ["forbidden", "forbidden"]
    assert producer.sent == []


async def test_broker_down_for_one_operation_marks_only_its_items(
    client: httpx.AsyncClient, producer: FakeProducer, two_ops: tuple[str, str, dict[str, str]]
) -> None:
    op_a, op_b, auth = two_ops
    producer.down_keys.add(op_b.encode())
    events = [make_event(op_a), make_event(op_b)]
    r = await client.post("/v1/events/batch", json={"events": events}, headers=auth)
    assert r.status_code == 207
    assert [i["status"] for i in r.json()["results"]] == ["accepted", "unavailable"]
    producer.down = True
    r = await client.post("/v1/events/batch", json={"events": events}, headers=auth)
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert r.json()["unavailable"] == 2


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ([], ""),
        ({}, "events"),
        ({"events": {}}, "events"),
        ({"events": []}, "events"),
        ({"events": [], "extra": 1}, "extra"),
    ],
)
async def test_wrong_batch_shape_is_422_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], doc: object, path: str
) -> None:
    r = await client.post("/v1/events/batch", json=doc, headers=auth)
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == path


async def test_too_many_events_is_422(
    client: httpx.AsyncClient, settings: IngestSettings, auth: dict[str, str], op: str
) -> None:
    events = [make_event(op) for _ in range(settings.max_batch_events + 1)]
    r = await client.post("/v1/events/batch", json={"events": events}, headers=auth)
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "events"


async def test_batch_bad_input_statuses(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    ctype = {"content-type": "application/json"}
    assert (
        await client.post("/v1/events/batch", content=b"[", headers=auth | ctype)
    ).status_code == 400
    text = {"content-type": "text/csv"}
    assert (
        await client.post("/v1/events/batch", content=b"a,b", headers=auth | text)
    ).status_code == 415
    assert (await client.post("/v1/events/batch", json={"events": []})).status_code == 401


def test_a_submission_too_big_for_one_record_is_split_in_order() -> None:
    events = [{"n": i, "pad": "x" * 1000} for i in range(100)]
    records = encode_records("op-big", events, "2026-11-29T10:00:00+00:00", "pc", 20_000)
    assert len(records) > 1
    assert all(len(value) <= 20_000 for _, value in records)
    rebuilt = [e["n"] for _, value in records for e in decode_submission(value).events]
    assert rebuilt == list(range(100))
    starts = [start for start, _ in records]
    assert starts[0] == 0 and starts == sorted(starts)
    assert encode_records("op-small", events[:3], "t", "pc", 20_000)[0][0] == 0
