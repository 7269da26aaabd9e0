"""The checker: compares the ledger and the log with the oracle's fates, after the fact.

Promises checked (DESIGN.md guarantees 1, 3, 4):

* every acknowledged event is on the topic and in ``ledger.events`` exactly once;
* no refused event is on the topic or in the ledger;
* ``ledger.totals`` equals ``schemas.tally.fold`` of the acknowledged events (voids included,
  so voided events count zero), row by row and per headline metric;
* the aggregator has applied the whole topic (its stored offsets reach the log's end).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.parsing import parse_event
from schemas.tally import fold
from services.audit.service import verify_operation

from .oracle import Fates

RowKey = tuple[str, str, str, str, date]


@dataclass
class Report:
    """What the checker found; ``ok`` when nothing was lost, duplicated or wrongly counted."""

    sent: int = 0
    acked: int = 0
    refused: int = 0
    unresolved: int = 0
    counted: int = 0  # acknowledged events found in ledger.events
    lost: list[str] = field(default_factory=list)  # acked, not in the ledger
    duplicated: list[str] = field(default_factory=list)  # in the ledger more than once
    missing_on_topic: list[str] = field(default_factory=list)  # acked, not on the topic
    refused_counted: list[str] = field(default_factory=list)  # refused, yet in ledger or topic
    conflicts_sent: int = 0  # acked resends of an id with other content
    conflicts_unrecorded: list[str] = field(default_factory=list)  # not in ledger.conflicts
    unexpected: list[str] = field(default_factory=list)  # in the ledger, never sent
    totals_diff: dict[str, Any] = field(default_factory=dict)  # op -> {row: (expected, actual)}
    chain_broken: dict[str, Any] = field(default_factory=dict)  # op -> audit verify problems
    topic_records: int = 0
    topic_event_copies: int = 0  # events on the topic, retries included
    anomalies: list[str] = field(default_factory=list)  # from the oracle

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.missing_on_topic
            or self.refused_counted
            or self.conflicts_unrecorded
            or self.unexpected
            or self.totals_diff
            or self.chain_broken
            or self.anomalies
        )

    def line(self) -> str:
        """One line for docs/reliability.md and the test log."""
        return (
            f"sent {self.sent}, acked {self.acked}, refused {self.refused}, "
            f"unresolved {self.unresolved}, counted {self.counted}, lost {len(self.lost)}, "
            f"duplicated {len(self.duplicated)}, totals mismatches {len(self.totals_diff)}, "
            f"conflicting resends {self.conflicts_sent} (unrecorded "
            f"{len(self.conflicts_unrecorded)}); "
            f"topic: {self.topic_records} records carrying {self.topic_event_copies} event copies"
        )

    def explain(self) -> str:
        parts = [self.line()]
        for name in ("lost", "duplicated", "missing_on_topic", "refused_counted", "unexpected",
                     "conflicts_unrecorded", "anomalies"):  # fmt: skip
            values = getattr(self, name)
            if values:
                parts.append(f"{name} ({len(values)}): {values[:5]}")
        if self.totals_diff:
            parts.append(f"totals differ: {str(self.totals_diff)[:1500]}")
        if self.chain_broken:
            parts.append(f"hash chain / projection broken: {str(self.chain_broken)[:1500]}")
        return "\n".join(parts)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions; fails when the broker does not know the topic."""
    for _ in range(20):
        cluster = await consumer._client.fetch_all_metadata()  # fresh, not the cached view
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        await asyncio.sleep(0.25)
    raise AssertionError(f"the broker does not know topic {topic}")


async def read_topic(bootstrap: str, topic: str) -> tuple[int, list[str]]:
    """Every record of the topic from the beginning to its end now: (records, event ids)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        records = 0
        ids: list[str] = []
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, msgs in batches.items():
                for msg in msgs:
                    if msg.offset >= ends[tp]:
                        continue
                    records += 1
                    doc = orjson.loads(msg.value) if msg.value else {}
                    ids.extend(str(e.get("event_id")) for e in doc.get("events", []))
                    if msg.offset >= ends[tp] - 1:
                        remaining.discard(tp)
        if remaining:
            raise AssertionError(f"could not read {topic} to its end: {sorted(remaining)}")
        return records, ids
    finally:
        await consumer.stop()


async def topic_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Next offset per partition (0 for an empty one)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = await _partitions(consumer, topic)
        ends = await consumer.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def applied_offsets(dsn: str, group: str, topic: str) -> dict[int, int]:
    """The group's last applied offset per partition, as stored with the rows."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT partition, last_offset FROM ledger.consumer_offsets"
            " WHERE consumer_group = $1 AND topic = $2",
            group,
            topic,
        )
    finally:
        await conn.close()
    return {r["partition"]: r["last_offset"] for r in rows}


async def wait_applied(
    dsn: str, bootstrap: str, topic: str, group: str, timeout_s: float = 120.0
) -> None:
    """Wait until the group's offsets in PostgreSQL reach the end of every partition."""
    ends = await topic_end_offsets(bootstrap, topic)
    want = {p: end - 1 for p, end in ends.items() if end > 0}
    deadline = time.monotonic() + timeout_s
    behind: dict[int, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        have = await applied_offsets(dsn, group, topic)
        behind = {p: (have.get(p, -1), w) for p, w in want.items() if have.get(p, -1) < w}
        if not behind:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(
        f"group {group} did not apply {topic} within {timeout_s} s: (have, want) {behind}"
    )


def expected_totals(events: list[dict[str, Any]]) -> dict[str, dict[RowKey, int]]:
    """Per operation: the fold of its acknowledged events (parsed as the aggregator would)."""
    by_op: dict[str, list[Any]] = defaultdict(list)
    for e in events:
        by_op[e["operation_id"]].append(parse_event(e))
    return {op: fold(evs).rows for op, evs in by_op.items()}


async def check(
    fates: Fates,
    *,
    dsn: str,
    bootstrap: str,
    topic: str,
    groups: list[str],
    timeout_s: float = 120.0,
) -> Report:
    """Wait for the aggregator to reach the log's end, then compare everything."""
    for group in groups:
        await wait_applied(dsn, bootstrap, topic, group, timeout_s)
    report = Report(
        sent=len(fates.sent),
        acked=len(fates.acked),
        refused=len(fates.refused),
        unresolved=len(fates.unresolved),
        anomalies=list(fates.anomalies),
    )
    operations = sorted({e["operation_id"] for e in fates.sent.values()})
    records, topic_ids = await read_topic(bootstrap, topic)
    report.topic_records, report.topic_event_copies = records, len(topic_ids)
    on_topic = set(topic_ids)
    report.missing_on_topic = sorted(set(fates.acked) - on_topic)

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT event_id::text AS id, count(*) AS n FROM ledger.events"
            " WHERE operation_id = ANY($1::text[]) GROUP BY event_id",
            operations,
        )
        totals = await conn.fetch(
            "SELECT operation_id, metric, detail, area, unit, day, value FROM ledger.totals"
            " WHERE operation_id = ANY($1::text[]) AND value <> 0",
            operations,
        )
        recorded = await conn.fetch(
            "SELECT DISTINCT event_id::text AS id FROM ledger.conflicts"
            " WHERE operation_id = ANY($1::text[])",
            operations,
        )
        report.conflicts_sent = len(fates.conflicts)
        report.conflicts_unrecorded = sorted(set(fates.conflicts) - {r["id"] for r in recorded})
        for op in operations:
            # The auditor's own check: chain contiguous and linked, projection = its events.
            verified = await verify_operation(conn, op)
            if not verified.ok:
                report.chain_broken[op] = verified.to_dict()
    finally:
        await conn.close()
    in_ledger = Counter({r["id"]: r["n"] for r in rows})
    report.counted = sum(1 for eid in fates.acked if eid in in_ledger)
    report.lost = sorted(set(fates.acked) - set(in_ledger))
    report.duplicated = sorted(eid for eid, n in in_ledger.items() if n > 1)
    report.refused_counted = sorted(
        eid for eid in fates.refused if eid in in_ledger or eid in on_topic
    )
    # An unresolved event (still retrying when the drain ended) may or may not have landed.
    report.unexpected = sorted(set(in_ledger) - set(fates.acked) - fates.unresolved)

    actual: dict[str, dict[RowKey, int]] = defaultdict(dict)
    for r in totals:
        key = (r["metric"], r["detail"], r["area"], r["unit"], r["day"])
        actual[r["operation_id"]][key] = r["value"]
    if not fates.unresolved:
        expected = expected_totals(list(fates.acked.values()))
        for op in operations:
            want, have = expected.get(op, {}), actual.get(op, {})
            diff = {
                str(k): (want.get(k, 0), have.get(k, 0))
                for k in set(want) | set(have)
                if want.get(k, 0) != have.get(k, 0)
            }
            if diff:
                report.totals_diff[op] = diff
    return report


def headline(rows: dict[RowKey, int]) -> dict[str, int]:
    """Headline metrics of a set of rows (for messages a person can read)."""
    out: Counter[str] = Counter()
    for (metric, *_), value in rows.items():
        out[metric] += value
    return dict(out)
