"""Closing an operation on the real stack: HTTP create and close (query), ingest learns the
close from the operations topic and refuses new events with 409, an admin's void with a reason
still counts, and an event that reaches the log after the close (bypassing ingest) is recorded
late: stored for the auditor, never chained, never counted; verify stays intact."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from schemas.examples import fresh_event
from services.audit.rebuild import rebuild
from services.common.auth import Principal
from services.common.db import create_pool
from services.common.wire import Submission, encode_submission
from services.devtools.asgi import serve_in_process
from services.devtools.procs import free_port
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.query.app import create_app as create_query
from services.query.settings import QuerySettings
from services.stack.devissuer.tokens import dev_token, dev_verifier
from tests.integration.audit.test_verify_db import cli

from .harness import AggregatorProcess, Target, metrics_of, produce, wait_applied

pytestmark = pytest.mark.integration
REBUILDER = Principal(subject="close-test-auditor", role="auditor")


def _auth(role: str, *operations: str) -> dict[str, str]:
    token = dev_token(role=role, operations=list(operations), subject=f"{role}-close-test")  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def query(target: Target) -> AsyncIterator[httpx.AsyncClient]:
    settings = QuerySettings(
        database_url=target.database_url, operations_database_url=target.database_url,
        kafka_bootstrap_servers=target.kafka,
        topic=target.topic, consumer_group=target.group,
        operations_topic=f"{target.topic}.operations", port=free_port(),
    )  # fmt: skip
    async with serve_in_process(create_query(settings), settings.port) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client


@pytest.fixture
def ingest_settings(target: Target) -> IngestSettings:
    return IngestSettings(
        env="test", kafka_bootstrap_servers=target.kafka, topic=target.topic,
        topic_partitions=target.partitions, operations_topic=f"{target.topic}.operations",
        operations_check_s=0.5, operations_startup_s=15,
    )  # fmt: skip


async def _closed_seen(app_state: object, op: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    statuses = app_state.ingest.statuses  # type: ignore[attr-defined]
    while statuses.closed(op) is None:
        assert time.monotonic() < deadline, f"ingest never saw the close: {statuses.health()}"
        await asyncio.sleep(0.1)


async def test_a_closed_operation_refuses_counts_corrections_and_records_late_events(
    target: Target,
    aggregator: AggregatorProcess,
    query: httpx.AsyncClient,
    ingest_settings: IngestSettings,
) -> None:
    op = f"close-{uuid.uuid4().hex[:10]}"
    admin, field = _auth("admin"), _auth("field", op)
    await aggregator.start()

    new = {
        "operation_id": op,
        "title": "Week of action against county lines",
        "areas": ["Buckinghamshire", "Oxfordshire"],
        "planned_start": "2026-11-23T06:00:00Z",
        "planned_end": "2026-11-29T22:00:00Z",
    }
    made = await query.post("/v1/operations", json=new, headers=admin)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "active"
    assert (await query.post("/v1/operations", json=new, headers=admin)).status_code == 409
    assert (await query.post("/v1/operations", json=new, headers=field)).status_code == 403
    bad = await query.post("/v1/operations", json={**new, "operation_id": "X"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "operation_id", bad.text

    app = create_ingest(ingest_settings)
    app.state.ingest.verifier = dev_verifier()
    async with app.router.lifespan_context(app):
        ingest = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://i")
        warrant, arrest = fresh_event(op), fresh_event(op, "arrest_made")
        for event in (warrant, arrest):
            resp = await ingest.post("/v1/events", json=event, headers=field)
            assert resp.status_code == 202, resp.text
        await wait_applied(target, 2)
        before = await metrics_of(target.database_url, op)
        assert before.get("warrants_executed") == 1, before

        closed = await query.post(f"/v1/operations/{op}/close", headers=admin)
        assert closed.status_code == 200, closed.text
        assert closed.json()["status"] == "closed"
        again = await query.post(f"/v1/operations/{op}/close", headers=admin)
        assert again.status_code == 409 and again.json()["operation_id"] == op, again.text
        assert (
            await query.post("/v1/operations/never-made-xyz/close", headers=admin)
        ).status_code == 404

        await _closed_seen(app.state, op)
        refused = await ingest.post("/v1/events", json=fresh_event(op), headers=field)
        assert refused.status_code == 409, refused.text
        assert refused.json()["operation_id"] == op and op in refused.json()["detail"]

        payload = {"voided_event_id": warrant["event_id"], "reason": "wrong premises"}
        void = fresh_event(op, "event_voided", payload=payload)
        accepted = await ingest.post("/v1/events", json=void, headers=_auth("admin"))
        assert accepted.status_code == 202, accepted.text
        ready = await ingest.get("/readyz")
        assert ready.json()["operations"]["state"] == "following", ready.text
        await ingest.aclose()

    # A field event that reaches the log after the close without passing ingest.
    late = fresh_event(op, "arrest_made")
    stamp = datetime.now(UTC).isoformat()
    value = encode_submission(Submission(op, stamp, "pc-bypass", [late], "field"))
    await produce(target, [(op, value)])
    await wait_applied(target, 4)

    after = await metrics_of(target.database_url, op)
    assert after.get("warrants_executed", 0) == 0  # the admin's void after close applied
    assert after.get("arrests") == before.get("arrests") == 1  # the late arrest not counted
    conn = await asyncpg.connect(target.database_url)
    try:
        where = "WHERE operation_id = $1"
        late_rows = await conn.fetch(
            f"SELECT event_id::text AS id, principal FROM ledger.late_events {where}", op
        )
        chained_rows = await conn.fetch(
            f"SELECT event_id::text AS id FROM ledger.events {where}", op
        )
        chained = {r["id"] for r in chained_rows}
    finally:
        await conn.close()
    assert [(r["id"], r["principal"]) for r in late_rows] == [(late["event_id"], "pc-bypass")]
    assert chained == {warrant["event_id"], arrest["event_id"], void["event_id"]}

    verified = await cli("verify", "--operation", op, database_url=target.database_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    shown = await query.get(f"/v1/operations/{op}", headers=_auth("supervisor", op))
    assert shown.status_code == 200 and shown.json()["status"] == "closed", shown.text
    other = await query.get(f"/v1/operations/{op}", headers=_auth("supervisor", "someone-else"))
    assert other.status_code == 403
    missing = await query.get("/v1/operations/never-made-xyz", headers=_auth("auditor"))
    assert missing.status_code == 404 and missing.json()["operation_id"] == "never-made-xyz"

    # The summary and the dashboard's listing carry the record; the correction and the late
    # event are stated, not hidden.
    auditor = _auth("auditor")
    text = (await query.get(f"/v1/operations/{op}/summary", headers=auditor)).text
    assert text.startswith(
        "# Week of action against county lines\n\nBuckinghamshire and Oxfordshire"
        " · planned 23 November 2026 to 29 November 2026 · events "
    ), text
    assert " · closed " in text.split("\n")[2]
    assert (
        "1 correction applied after the close; 1 event arrived after the close, not counted."
        in text
    )
    assert "- 1 adult arrested" in text and "warrant" not in text
    doc = (
        await query.get(f"/v1/operations/{op}/summary", params={"format": "json"}, headers=auditor)
    ).json()["operation"]
    assert (doc["status"], doc["corrections_after_close"], doc["late_events"]) == ("closed", 1, 1)
    assert doc["title"] == "Week of action against county lines"
    listing = (await query.get("/v1/operations", headers=auditor)).json()["operations"]
    entry = next(o for o in listing if o["operation_id"] == op)
    assert (entry["title"], entry["status"]) == ("Week of action against county lines", "closed")

    # The audit history marks the correction applied after the close; the late event is listed
    # for auditors (and only them), with why it was not counted.
    history = (await query.get(f"/v1/operations/{op}/events", headers=auditor)).json()["events"]
    flags = {e["event_id"]: e["after_close"] for e in history}
    assert flags == {warrant["event_id"]: False, arrest["event_id"]: False, void["event_id"]: True}
    listed = await query.get(f"/v1/operations/{op}/late-events", headers=auditor)
    assert listed.status_code == 200, listed.text
    [kept] = listed.json()["events"]
    assert (kept["event_id"], kept["role"], kept["body"]["type"]) == (
        late["event_id"],
        "field",
        "arrest_made",
    )
    assert "closed" in kept["reason"]
    supervisor = _auth("supervisor", op)
    assert (
        await query.get(f"/v1/operations/{op}/late-events", headers=supervisor)
    ).status_code == 403

    # A rebuild replays the log through the same writer and reaches the same decisions: the
    # late event is late again, the correction applies again, totals and chain heads match.
    pool = await create_pool(target.database_url, min_size=1, max_size=2)
    try:
        report = await rebuild(
            pool, target.kafka, target.topic, principal=REBUILDER, consumer_group=target.group,
            only_seen=True, dsn=target.database_url,
        )  # fmt: skip
    finally:
        await pool.close()
    assert report.matches, report.to_dict()
    assert report.events == 3  # the chained ones: two field events and the correction
