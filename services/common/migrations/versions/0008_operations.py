"""Operations as records: title, areas, planned window and status (issue 16 item 1).

The log of record for them is the compacted Kafka topic of operation records (key =
operation_id); this table is where queries find them. An operation that was never created has
no row here and keeps working (created implicitly by its first event).
"""

from __future__ import annotations

from services.common.migrations.versions import run_script

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE ledger.operations (
    operation_id  text        PRIMARY KEY,
    title         text        NOT NULL,
    areas         text[]      NOT NULL DEFAULT '{}',
    planned_start timestamptz NOT NULL,
    planned_end   timestamptz NOT NULL,
    status        text        NOT NULL CHECK (status IN ('planned', 'active', 'closed')),
    created_at    timestamptz NOT NULL,
    created_by    text        NOT NULL,
    closed_at     timestamptz,
    closed_by     text,
    CHECK (planned_end >= planned_start),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
"""

DOWNGRADE = "DROP TABLE ledger.operations;"


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
