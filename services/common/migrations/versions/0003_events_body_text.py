"""``ledger.events.body`` keeps the text that was hashed: ``json``, not ``jsonb``.

``jsonb`` stores a parsed value and gives back its own spelling (numbers as ``numeric``, its own
key order and spaces), so verify had to re-serialise it and hope for the bytes that were hashed.
``json`` keeps the input text exactly; the writer stores the canonical bytes it hashed, and
verify checks the hash over that very text (an auditor can do the same with SHA-256 alone).
Queries by path (``body->'payload'``) work on both types.

Rows already stored keep jsonb's spelling (the cast goes through jsonb's text); verify checks
such a row, whose text is not canonical, in canonical form as before. Shadow schemas of a
rebuild copy the live tables (``LIKE ... INCLUDING ALL``), so they follow.

Revision ID: 0003
Revises: 0007
Create Date: 2026-11-30
"""

from services.common.migrations.versions import run_script

revision = "0003"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE ledger.events ALTER COLUMN body TYPE json USING body::json;
COMMENT ON COLUMN ledger.events.body IS
    'The event as stored: exactly the canonical JSON bytes hashed into the chain.';
"""

DOWNGRADE = r"""
COMMENT ON COLUMN ledger.events.body IS NULL;
ALTER TABLE ledger.events ALTER COLUMN body TYPE jsonb USING body::jsonb;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
