"""The ledger: events (hash-chained, append-only), contributions, voids, totals, offsets, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from services.common.migrations.versions import run_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE SCHEMA audit;

-- Kept outside `ledger` so that a rebuild's schema swap never drops it.
CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE SCHEMA ledger;

-- Every accepted event, once, in chain order per operation. `body` is the event as stored and
-- hashed (client fields + recorded_at + principal); the other columns are copies for querying.
CREATE TABLE ledger.events (
    event_id        uuid PRIMARY KEY,
    operation_id    text        NOT NULL,
    seq             bigint      NOT NULL,
    type            text        NOT NULL,
    schema_version  integer     NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    principal       text        NOT NULL,
    officer_id      text        NOT NULL,
    unit            text        NOT NULL,
    area            text        NOT NULL,
    body            jsonb       NOT NULL,
    content_hash    text        NOT NULL,  -- SHA-256 of the client-set fields (retry vs conflict)
    prev_hash       text        NOT NULL,
    hash            text        NOT NULL,  -- SHA-256(canonical_json(body) || prev_hash)
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    kafka_index     integer     NOT NULL,  -- position of the event inside its submission
    applied_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_chain_position UNIQUE (operation_id, seq)
);
CREATE INDEX events_op_occurred ON ledger.events (operation_id, occurred_at);
CREATE INDEX events_op_recorded ON ledger.events (operation_id, recorded_at);

-- The head of each operation's chain; read and advanced under a row lock in each batch.
CREATE TABLE ledger.chain_heads (
    operation_id text        PRIMARY KEY,
    seq          bigint      NOT NULL,
    hash         text        NOT NULL,
    first_at     timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- What each event added to the tally (a void's row is its target's, negated, carrying the
-- target's occurred_at and the void's recorded_at). totals = SUM(delta) GROUP BY the dimensions;
-- as_of / known_at reads sum these rows up to a time.
CREATE TABLE ledger.contributions (
    event_id     uuid        PRIMARY KEY,
    operation_id text        NOT NULL,
    metric       text        NOT NULL,
    detail       text        NOT NULL,
    area         text        NOT NULL,
    unit         text        NOT NULL,
    day          date        NOT NULL,
    delta        bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL
);
CREATE INDEX contributions_op_occurred ON ledger.contributions (operation_id, occurred_at)
    INCLUDE (metric, detail, area, unit, day, delta, recorded_at);
CREATE INDEX contributions_op_recorded ON ledger.contributions (operation_id, recorded_at)
    INCLUDE (metric, detail, area, unit, day, delta, occurred_at);

-- One row per voided target. `applied` stays false while the target has not arrived yet.
CREATE TABLE ledger.voids (
    target_event_id uuid    PRIMARY KEY,
    void_event_id   uuid    NOT NULL UNIQUE,
    operation_id    text    NOT NULL,
    applied         boolean NOT NULL DEFAULT false
);

-- The projection: the tally at its finest grain. Headline metrics are sums over it.
CREATE TABLE ledger.totals (
    operation_id text   NOT NULL,
    metric       text   NOT NULL,
    detail       text   NOT NULL,
    area         text   NOT NULL,
    unit         text   NOT NULL,
    day          date   NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (operation_id, metric, detail, area, unit, day)
);

-- The same event_id seen again with different content: recorded, never counted.
CREATE TABLE ledger.conflicts (
    id                  bigserial   PRIMARY KEY,
    event_id            uuid        NOT NULL,
    operation_id        text        NOT NULL,
    stored_content_hash text        NOT NULL,
    content_hash        text        NOT NULL,
    body                jsonb       NOT NULL,
    kafka_topic         text        NOT NULL,
    kafka_partition     integer     NOT NULL,
    kafka_offset        bigint      NOT NULL,
    kafka_index         integer     NOT NULL,
    detected_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conflicts_source UNIQUE (kafka_topic, kafka_partition, kafka_offset, kafka_index)
);
CREATE INDEX conflicts_op ON ledger.conflicts (operation_id);

-- Kafka positions applied, written in the same transaction as the rows they produced.
CREATE TABLE ledger.consumer_offsets (
    consumer_group text        NOT NULL,
    topic          text        NOT NULL,
    partition      integer     NOT NULL,
    last_offset    bigint      NOT NULL,  -- last applied record's offset
    highwater      bigint,                -- the partition's end offset as last seen by the consumer
    last_event_at  timestamptz,           -- recorded_at of the newest applied event
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);

-- History is append-only; verify still detects edits made by someone who disables this.
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON ledger.events
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();

-- Every auditor read (history, export, verify, rebuild), append-only.
CREATE TABLE audit.access_log (
    id           bigserial   PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    principal    text        NOT NULL,
    role         text        NOT NULL,
    action       text        NOT NULL,
    operation_id text,
    params       jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX access_log_at ON audit.access_log (at);
CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON audit.access_log
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON audit.access_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
"""

DOWNGRADE = r"""
DROP SCHEMA audit CASCADE;
DROP SCHEMA ledger CASCADE;
"""


def upgrade() -> None:
    run_script(UPGRADE)


def downgrade() -> None:
    run_script(DOWNGRADE)
