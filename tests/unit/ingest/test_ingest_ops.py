"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import httpx

from .conftest import FakeProducer, make_event


async def test_health_and_readiness(client: httpx.AsyncClient, producer: FakeProducer) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    producer.down = True
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert (await client.get("/healthz")).status_code == 200


async def test_metrics_count_requests_events_and_produce_latency(
    client: httpx.AsyncClient, auth: dict[str, str], op: str
) -> None:
    await client.post("/v1/events", json=make_event(op), headers=auth)
    await client.post("/v1/events", json=make_event(op, principal="x"), headers=auth)
    batch = {"events": [make_event(op), make_event(op), make_event("alien-op")]}
    await client.post("/v1/events/batch", json=batch, headers=auth)
    text = (await client.get("/metrics")).text
    assert 'ingest_requests_total{route="/v1/events",status="202"} 1.0' in text
    assert 'ingest_requests_total{route="/v1/events",status="422"} 1.0' in text
    assert 'ingest_requests_total{route="/v1/events/batch",status="207"} 1.0' in text
    assert "ingest_events_accepted_total 3.0" in text
    assert 'ingest_events_rejected_total{reason="contract"} 1.0' in text
    assert 'ingest_events_rejected_total{reason="forbidden"} 1.0' in text
    assert "ingest_produce_seconds_count 2.0" in text


async def test_openapi_documents_the_event_contract(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    kinds = {ref["$ref"].rsplit("/", 1)[1] for ref in schemas["FieldEvent"]["oneOf"]}
    assert {"WarrantExecuted", "ArrestMade", "ItemSeized", "EventVoided"} <= kinds
    single = doc["paths"]["/v1/events"]["post"]
    body = single["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/FieldEvent"}
    assert {"202", "400", "401", "403", "413", "415", "422", "503"} <= set(single["responses"])
    batch = doc["paths"]["/v1/events/batch"]["post"]
    items = batch["requestBody"]["content"]["application/json"]["schema"]["properties"]["events"]
    assert items["items"] == {"$ref": "#/components/schemas/FieldEvent"}
    assert items["maxItems"] == 50  # this app's max_batch_events
    assert {"202", "207", "422", "503"} <= set(batch["responses"])
    assert "207" in doc["info"]["description"]
