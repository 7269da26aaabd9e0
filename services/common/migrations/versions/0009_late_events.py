"""Closing an operation: where its tally was frozen, and the events that came too late.

Revision ID: 0009
Revises: 0006

``tlog.closures`` records, per closed operation, the log position of the last event counted at
close (kept beside the signed checkpoints, outside ``ledger``, so that a rebuild's schema swap
never drops it and a rebuild decides lateness exactly as the aggregator did). An event that
reaches the ledger after that position is stored in ``ledger.late_events``: visible to an
auditor, never chained, never counted.
"""

from __future__ import annotations

from services.common.migrations.versions import run_script

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE tlog.closures (
    operation_id    text        PRIMARY KEY,
    kafka_partition integer,                 -- NULL when it closed with no event
    last_offset     bigint      NOT NULL,    -- of its last counted event; -1 when none
    tree_size       bigint      NOT NULL CHECK (tree_size >= 0),
    closed_at       timestamptz NOT NULL,
    closed_by       text        NOT NULL
);
CREATE TRIGGER closures_append_only BEFORE UPDATE OR DELETE ON tlog.closures
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();

CREATE TABLE ledger.late_events (
    event_id        uuid        PRIMARY KEY,
    operation_id    text        NOT NULL,
    type            text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    principal       text        NOT NULL,
    role            text,
    body            jsonb       NOT NULL,
    content_hash    text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    kafka_index     integer     NOT NULL,
    reason          text        NOT NULL,
    noted_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX late_events_op ON ledger.late_events (operation_id, kafka_offset, kafka_index);
"""

DOWNGRADE = r"""
DROP TABLE ledger.late_events;
DROP TABLE tlog.closures;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
