"""Dead letters: every record the ledger could not apply, why, where from, and what became of it.

Kept in its own schema, outside ``ledger``, so that a rebuild's schema swap never replaces it:
whether a dead letter was replayed or discarded is an operator's decision, not something the
log can recompute. The writer inserts a row in the same transaction that moves the offset past
the record (``ON CONFLICT DO NOTHING`` on the source position: a redelivery or a rebuild finds
it already there); `opsledger dlq` lists, shows, replays and discards.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from services.common.migrations.versions import run_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE SCHEMA dlq;

CREATE TABLE dlq.dead_letters (
    topic            text        NOT NULL,
    partition        integer     NOT NULL,
    "offset"         bigint      NOT NULL,
    reason           text        NOT NULL,
    value            bytea,                  -- the record's bytes, untouched
    dead_at          timestamptz NOT NULL DEFAULT now(),
    status           text        NOT NULL DEFAULT 'dead'
                     CHECK (status IN ('dead', 'replayed', 'discarded')),
    resolved_at      timestamptz,
    resolved_by      text,
    note             text,                   -- why it was discarded
    replay_partition integer,                -- where `dlq replay` re-published it
    replay_offset    bigint,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX dead_letters_open ON dlq.dead_letters (topic, dead_at) WHERE status = 'dead';
COMMENT ON TABLE dlq.dead_letters IS
    'Records the ledger refused (undecodable, contract, refused by the database), one row per '
    'source position; status dead -> replayed | discarded by `opsledger dlq`.';
"""

DOWNGRADE = r"""
DROP SCHEMA dlq CASCADE;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
