"""Voids keyed by the void event: several may wait for one target, at most one is applied.

Before, ``ledger.voids`` had one row per target: a void sent under another operation, held
until its target arrived, then blocked the target's own operation from voiding it. Now every
held or applied void has its row; a partial unique index keeps one applied void per target.
Rebuild shadows copy this shape from the live tables (``LIKE ... INCLUDING ALL``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from services.common.migrations.versions import run_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE ledger.voids DROP CONSTRAINT voids_pkey;
ALTER TABLE ledger.voids DROP CONSTRAINT voids_void_event_id_key;
ALTER TABLE ledger.voids ADD PRIMARY KEY (void_event_id);
CREATE INDEX voids_target ON ledger.voids (target_event_id);
CREATE UNIQUE INDEX voids_one_applied ON ledger.voids (target_event_id) WHERE applied;
COMMENT ON TABLE ledger.voids IS
    'One row per void waiting for its target (applied = false) or applied to it; '
    'at most one applied per target (schemas.tally decides which).';
"""

# Going back keeps one row per target: the applied void if there is one, else one held void.
DOWNGRADE = r"""
DELETE FROM ledger.voids v USING ledger.voids w
WHERE v.target_event_id = w.target_event_id AND v.void_event_id <> w.void_event_id
  AND (w.applied, w.void_event_id) > (v.applied, v.void_event_id);
DROP INDEX ledger.voids_one_applied;
DROP INDEX ledger.voids_target;
ALTER TABLE ledger.voids DROP CONSTRAINT voids_pkey;
ALTER TABLE ledger.voids ADD PRIMARY KEY (target_event_id);
ALTER TABLE ledger.voids ADD CONSTRAINT voids_void_event_id_key UNIQUE (void_event_id);
COMMENT ON TABLE ledger.voids IS NULL;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
