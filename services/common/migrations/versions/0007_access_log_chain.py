"""The access log becomes a hash chain (seq, prev_hash, hash) with a locked head, and its
triggers fire even under ``session_replication_role = replica``.

Rows already present are linked in id order, so the chain covers them too. The head
(``audit.access_log_head``, one row) is only ever moved by the insert trigger, which runs as
the owner (SECURITY DEFINER): a service role may append a row that extends the head and
nothing else. ``ENABLE ALWAYS``: the replica setting, which skips ordinary triggers (e.g. for a
logical-replication apply, or a superuser session that sets it), no longer switches the
append-only rule off.

Revision ID: 0007
Revises: 0002
Create Date: 2026-11-30
"""

import orjson
from alembic import op
from sqlalchemy.util import await_only

from schemas.canonical import GENESIS_HASH, chain_hash
from services.common.access_log import row_body
from services.common.migrations.versions import run_script

revision = "0007"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = r"""
ALTER TABLE audit.access_log
    ADD COLUMN seq bigint,
    ADD COLUMN prev_hash text,
    ADD COLUMN hash text;
"""

UPGRADE = r"""
ALTER TABLE audit.access_log
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL,
    ADD CONSTRAINT access_log_chain_position UNIQUE (seq);

CREATE TABLE audit.access_log_head (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint  NOT NULL,
    hash text    NOT NULL
);
INSERT INTO audit.access_log_head (seq, hash)
SELECT COALESCE(max(seq), 0),
       COALESCE((SELECT hash FROM audit.access_log ORDER BY seq DESC LIMIT 1), '{genesis}')
FROM audit.access_log;

-- A writer's first statement: lock the head until its transaction ends and say where to link.
-- The time is taken after the lock, so `at` never goes backwards along the chain.
CREATE FUNCTION audit.access_log_lock_head(OUT seq bigint, OUT hash text, OUT at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT h.seq, h.hash INTO seq, hash FROM audit.access_log_head h FOR UPDATE;
    at := clock_timestamp();
END
$$;
REVOKE ALL ON FUNCTION audit.access_log_lock_head() FROM PUBLIC;

-- Every insert must extend the head it locked; the trigger then advances the head.
CREATE FUNCTION audit.access_log_link() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    h record;
BEGIN
    SELECT seq, hash INTO h FROM audit.access_log_head FOR UPDATE;
    IF NEW.seq IS DISTINCT FROM h.seq + 1 OR NEW.prev_hash IS DISTINCT FROM h.hash
       OR NEW.hash IS NULL THEN
        RAISE EXCEPTION 'audit.access_log: seq % does not extend the chain head (seq %)',
            NEW.seq, h.seq USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    UPDATE audit.access_log_head SET seq = NEW.seq, hash = NEW.hash;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION audit.access_log_link() FROM PUBLIC;
CREATE TRIGGER access_log_chain BEFORE INSERT ON audit.access_log
    FOR EACH ROW EXECUTE FUNCTION audit.access_log_link();

-- The head is moved by the trigger alone; nobody updates, deletes or truncates it by hand.
CREATE FUNCTION audit.access_log_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 AND TG_OP = 'UPDATE' THEN
        RETURN NEW;  -- access_log_link advancing it
    END IF;
    RAISE EXCEPTION 'audit.access_log_head moves only when a row is appended'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER access_log_head_guard BEFORE UPDATE OR DELETE ON audit.access_log_head
    FOR EACH ROW EXECUTE FUNCTION audit.access_log_head_guard();
CREATE TRIGGER access_log_head_no_truncate BEFORE TRUNCATE ON audit.access_log_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

ALTER TABLE audit.access_log ENABLE ALWAYS TRIGGER access_log_append_only;
ALTER TABLE audit.access_log ENABLE ALWAYS TRIGGER access_log_no_truncate;
ALTER TABLE audit.access_log ENABLE ALWAYS TRIGGER access_log_chain;
ALTER TABLE audit.access_log_head ENABLE ALWAYS TRIGGER access_log_head_guard;
ALTER TABLE audit.access_log_head ENABLE ALWAYS TRIGGER access_log_head_no_truncate;
ALTER TABLE ledger.events ENABLE ALWAYS TRIGGER events_append_only;
COMMENT ON TABLE audit.access_log IS
    'Every consultation and disclosure (DPA 2018 Part 3 s.62), hash-chained by seq; '
    'see services/common/access_log.py and docs/security.md.';
""".replace("{genesis}", GENESIS_HASH)

DOWNGRADE = r"""
ALTER TABLE ledger.events ENABLE TRIGGER events_append_only;
ALTER TABLE audit.access_log ENABLE TRIGGER access_log_append_only;
ALTER TABLE audit.access_log ENABLE TRIGGER access_log_no_truncate;
DROP TRIGGER access_log_chain ON audit.access_log;
DROP FUNCTION audit.access_log_link();
DROP FUNCTION audit.access_log_lock_head();
DROP TABLE audit.access_log_head;
DROP FUNCTION audit.access_log_head_guard();
ALTER TABLE audit.access_log DROP COLUMN seq, DROP COLUMN prev_hash, DROP COLUMN hash;
COMMENT ON TABLE audit.access_log IS NULL;
"""


def _link_existing_rows() -> None:
    """Chain the rows written before this revision, oldest (lowest id) first."""
    driver = op.get_bind().connection.driver_connection
    assert driver is not None, "migrations run over a live asyncpg connection"
    rows = await_only(
        driver.fetch(
            "SELECT id, at, principal, role, action, operation_id, params::text AS params"
            " FROM audit.access_log ORDER BY id"
        )
    )
    prev, links = GENESIS_HASH, []
    for seq, r in enumerate(rows, start=1):
        body = row_body(seq, r["at"], r["principal"], r["role"], r["action"],
                        r["operation_id"], orjson.loads(r["params"]))  # fmt: skip
        digest = chain_hash(body, prev)
        links.append((r["id"], seq, prev, digest))
        prev = digest
    if links:
        await_only(driver.execute("ALTER TABLE audit.access_log DISABLE TRIGGER USER"))
        await_only(
            driver.executemany(
                "UPDATE audit.access_log SET seq = $2, prev_hash = $3, hash = $4 WHERE id = $1",
                links,
            )
        )
        await_only(driver.execute("ALTER TABLE audit.access_log ENABLE TRIGGER USER"))


def upgrade() -> None:
    run_script(COLUMNS)
    _link_existing_rows()
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
