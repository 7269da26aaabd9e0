"""The reference week of action through Kafka and the aggregator's writer, then every audit:
verify is clean and recomputes the published tally, the bundle checks offline, the rebuild
from the log equals the live projection."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.audit.export import View, verify_bundle
from services.audit.rebuild import rebuild
from services.audit.service import export_operation, verify_operation
from services.common.auth import Principal
from services.common.wire import Submission, encode_submission
from services.demo.data import REFERENCE, week_of_action

from .conftest import Live, produce

pytestmark = pytest.mark.integration


async def test_reference_week_audits_clean(
    pool: asyncpg.Pool, kafka_bootstrap: str, topic: str, unique_id: str, tmp_path: Path
) -> None:
    op = f"week-{unique_id}"
    week = week_of_action(operation_id=op)
    keyed = []
    for send in week.sends:
        latest = max(datetime.fromisoformat(e["occurred_at"]) for e in send.events)
        recorded = (latest + timedelta(minutes=1)).isoformat()
        keyed.append((op, encode_submission(Submission(op, recorded, "field-app", send.events))))
    live = Live(pool, topic, f"audit-week-{unique_id}")
    records = await produce(kafka_bootstrap, topic, keyed)
    for at in range(0, len(records), 50):  # batches, as the live consumer takes them
        await live.apply(records[at : at + 50])

    async with pool.acquire() as conn:
        report = await verify_operation(conn, op)
        assert report.ok, report.to_dict()
        assert report.recomputed == REFERENCE
        assert report.events == week.event_count - week.duplicates
        bundle = tmp_path / "week.tar"
        await export_operation(conn, op, bundle, fmt="csv", view=View(), created_by="test")
    checked = verify_bundle(bundle)
    assert checked.ok, checked.to_dict()
    assert checked.verify is not None and checked.verify.recomputed == REFERENCE

    rebuilt = await rebuild(
        pool, kafka_bootstrap, topic, principal=Principal("test-auditor", "auditor"),
        consumer_group=live.group, only_seen=True,
    )  # fmt: skip
    assert rebuilt.matches, rebuilt.to_dict()
    assert rebuilt.duplicates == week.duplicates
