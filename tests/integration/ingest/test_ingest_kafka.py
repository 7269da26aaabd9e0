"""Ingest against the real broker: what a 202 promises is on the topic, under the right key."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common.wire import decode_submission
from services.ingest.settings import IngestSettings

from .conftest import auth_for, make_event, read_records

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


async def test_a_202_event_is_on_the_topic_under_its_operation_key(
    client: httpx.AsyncClient, topic_settings: IngestSettings, op: str
) -> None:
    event = make_event(op)
    r = await client.post("/v1/events", json=event, headers=auth_for(topic_settings, op))
    assert r.status_code == 202
    answer = r.json()
    [record] = await read_records(topic_settings.kafka_bootstrap_servers, topic_settings.topic, 1)
    assert (record.partition, record.offset) == (answer["partition"], answer["offset"])
    assert record.key == op.encode()
    submission = decode_submission(record.value)
    assert submission.principal == "pc-4101"
    assert [e["event_id"] for e in submission.events] == [event["event_id"]]


async def test_topics_are_created_with_the_configured_partitions_and_no_retention(
    client: httpx.AsyncClient, topic_settings: IngestSettings
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=topic_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        names = [topic_settings.topic, topic_settings.dlq_topic]
        # Just created: the metadata may list the partitions only after a moment.
        for _ in range(30):
            described = await admin.describe_topics(names)
            counts = {t["topic"]: len(t["partitions"]) for t in described}
            if all(counts.values()):
                break
            await asyncio.sleep(0.3)
        assert counts == dict.fromkeys(names, 3)
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        [response] = await admin.describe_configs(resources)
        assert len(response.resources) == 2
        for *_, configs in response.resources:
            values = {c[0]: c[1] for c in configs}
            assert values["retention.ms"] == "-1"
    finally:
        await admin.close()


async def test_a_mixed_batch_writes_one_record_per_operation(
    client: httpx.AsyncClient, topic_settings: IngestSettings, op: str
) -> None:
    other = op + "-b"
    events = [
        make_event(op),
        make_event(other, "item_seized"),
        make_event(op, recorded_at="2026-11-29T09:00:00+00:00"),
        make_event(op, "arrest_made"),
        make_event("alien-op"),
    ]
    r = await client.post(
        "/v1/events/batch", json={"events": events}, headers=auth_for(topic_settings, op, other)
    )
    assert r.status_code == 207
    body = r.json()
    assert [i["status"] for i in body["results"]] == [
        "accepted", "accepted", "rejected", "accepted", "rejected",
    ]  # fmt: skip
    records = await read_records(topic_settings.kafka_bootstrap_servers, topic_settings.topic, 2)
    by_key = {rec.key: rec for rec in records}
    assert len(records) == 2 and set(by_key) == {op.encode(), other.encode()}
    mine = decode_submission(by_key[op.encode()].value)
    assert [e["event_id"] for e in mine.events] == [events[0]["event_id"], events[3]["event_id"]]
    first = body["results"][0]
    assert (first["partition"], first["offset"], first["record_index"]) == (
        by_key[op.encode()].partition,
        by_key[op.encode()].offset,
        0,
    )
    assert body["results"][3]["record_index"] == 1


async def test_every_bad_input_is_refused_and_nothing_reaches_the_topic(
    client: httpx.AsyncClient, topic_settings: IngestSettings, op: str
) -> None:
    auth = auth_for(topic_settings, op)
    as_json = auth | {"content-type": "application/json"}
    good = orjson.dumps(make_event(op))
    cases = [
        ("/v1/events", b"x" * (topic_settings.max_body_bytes + 1), as_json, 413),
        ("/v1/events", good, auth | {"content-type": "text/plain"}, 415),
        ("/v1/events", b'{"event_id": ', as_json, 400),
        ("/v1/events", orjson.dumps(make_event(op, principal="me")), as_json, 422),
        ("/v1/events", orjson.dumps(make_event(op, type="nonsense")), as_json, 422),
        ("/v1/events", good, {"content-type": "application/json"}, 401),
        ("/v1/events", orjson.dumps(make_event("alien-op")), as_json, 403),
        ("/v1/events/batch", b"[1,", as_json, 400),
        ("/v1/events/batch", orjson.dumps({"events": []}), as_json, 422),
    ]
    for path, body, headers, status in cases:
        r = await client.post(path, content=body, headers=headers)
        assert (r.status_code, r.headers["content-type"]) == (status, PROBLEM), (path, body[:40])
    r = await client.post("/v1/events", content=good, headers=as_json)
    assert r.status_code == 202
    records = await read_records(topic_settings.kafka_bootstrap_servers, topic_settings.topic, 1)
    assert len(records) == 1


async def test_concurrent_events_all_land_exactly_once(
    client: httpx.AsyncClient, topic_settings: IngestSettings, op: str
) -> None:
    auth = auth_for(topic_settings, op)
    events = [make_event(op) for _ in range(50)]
    answers = await asyncio.gather(
        *(client.post("/v1/events", json=e, headers=auth) for e in events)
    )
    assert {a.status_code for a in answers} == {202}
    records = await read_records(topic_settings.kafka_bootstrap_servers, topic_settings.topic, 50)
    ids = [decode_submission(r.value).events[0]["event_id"] for r in records]
    assert sorted(ids) == sorted(e["event_id"] for e in events)
    assert len({r.partition for r in records}) == 1  # one operation, one partition
    assert [r.offset for r in records] == sorted(a.json()["offset"] for a in answers)


async def test_readiness_against_the_live_broker(client: httpx.AsyncClient) -> None:
    # A topic created a moment ago may take a little while to appear in the metadata.
    deadline = asyncio.get_running_loop().time() + 15
    while (r := await client.get("/readyz")).status_code != 200:
        assert r.status_code == 503
        assert asyncio.get_running_loop().time() < deadline, r.json()
        await asyncio.sleep(0.5)
    assert r.json()["status"] == "ready"
    # Beside it, the operations view (ready either way: ingest fails open), which follows the
    # operations topic once the broker has it (created with the log at start-up).
    while (ops := r.json()["operations"])["state"] != "following":
        assert asyncio.get_running_loop().time() < deadline + 10, ops
        await asyncio.sleep(0.5)
        r = await client.get("/readyz")
    assert ops["caught_up"] is True and ops["error"] is None
