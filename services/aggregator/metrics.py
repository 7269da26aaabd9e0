"""Prometheus metrics of the aggregator (served on /metrics by the health server)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter(
    "opsledger_aggregator_events_applied_total", "New events appended to the ledger."
)
DUPLICATES = Counter(
    "opsledger_aggregator_duplicates_total", "Events seen again with the same content (no-op)."
)
CONFLICTS = Counter(
    "opsledger_aggregator_conflicts_total",
    "Events seen again with different content (recorded in ledger.conflicts, not counted).",
)
DEAD_LETTERED = Counter(
    "opsledger_aggregator_dead_lettered_total", "Poison records sent to the dead-letter topic."
)
RECORDS = Counter("opsledger_aggregator_records_total", "Records (submissions) consumed.")
SKIPPED = Counter(
    "opsledger_aggregator_records_skipped_total",
    "Records at or below the stored offset (redelivered after a crash or rebalance).",
)
BATCH_RETRIES = Counter(
    "opsledger_aggregator_batch_retries_total", "Failed batch transactions retried."
)
BATCH_SECONDS = Histogram(
    "opsledger_aggregator_batch_seconds",
    "Time to commit one batch (transaction plus dead-lettering), retries included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_EVENTS = Histogram(
    "opsledger_aggregator_batch_events",
    "Events per committed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
LAG = Gauge(
    "opsledger_aggregator_consumer_lag",
    "Records on the partition not yet applied (highwater - last applied - 1).",
    ["partition"],
)
RETRYING = Gauge(
    "opsledger_aggregator_retrying", "1 while a batch is failing and being retried, else 0."
)
PARTITION_HELD = Gauge(
    "opsledger_aggregator_partition_held",
    "1 while the partition is held (a transient failure: paused and retried alone), else 0.",
    ["partition"],
)
PARTITION_HOLD_RETRIES = Gauge(
    "opsledger_aggregator_partition_hold_retries",
    "Failed retries of the partition's current hold (0 when not held).",
    ["partition"],
)
DLQ_DEPTH = Gauge(
    "opsledger_aggregator_dlq_depth",
    "Open dead letters of the topic (dlq.dead_letters, neither replayed nor discarded).",
)
