-- Privileges on the objects that exist now; run as opsledger_owner after every
-- `opsledger migrate` (compose's db-grants job, the Kubernetes migrate Job and the local stack's
-- `opsledger stack up` do). Idempotent. roles.sql's default privileges already cover new tables;
-- this file re-asserts them for tables created before the roles existed and adds the
-- table-specific rules. tests/integration/security/test_db_privileges.py shows each refusal.

GRANT USAGE ON SCHEMA ledger, audit TO opsledger_aggregator, opsledger_query, opsledger_auditor;

-- query and auditor: read-only on the ledger; on the access log they may read and append
-- (through the chain head's lock function), never change a row or move the head by hand.
GRANT SELECT ON ALL TABLES IN SCHEMA ledger TO opsledger_query, opsledger_auditor;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA ledger
    FROM opsledger_query, opsledger_auditor;
REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM opsledger_query, opsledger_auditor;
GRANT SELECT, INSERT ON audit.access_log TO opsledger_query, opsledger_auditor;
GRANT SELECT ON audit.access_log_head TO opsledger_query, opsledger_auditor;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA audit TO opsledger_query, opsledger_auditor;
GRANT EXECUTE ON FUNCTION audit.access_log_lock_head() TO opsledger_query, opsledger_auditor;

-- aggregator: the only writer of the read model. History (events, contributions, conflicts) is
-- inserted, never updated or deleted; what a batch must move is the chain heads, the totals and
-- their time-travel rollups, the consumer offsets and a held void's `applied` flag.
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA ledger TO opsledger_aggregator;
REVOKE UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA ledger FROM opsledger_aggregator;
GRANT UPDATE ON ledger.chain_heads, ledger.totals, ledger.rollups, ledger.consumer_offsets
    TO opsledger_aggregator;
GRANT UPDATE (applied) ON ledger.voids TO opsledger_aggregator;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ledger TO opsledger_aggregator;
REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM opsledger_aggregator;
REVOKE ALL ON FUNCTION audit.access_log_lock_head() FROM opsledger_aggregator;

-- dead letters: the aggregator records them (in its batch transaction); query and auditor read.
-- `opsledger dlq replay | discard` run as the owner (like `opsledger rebuild`).
GRANT USAGE ON SCHEMA dlq TO opsledger_aggregator, opsledger_query, opsledger_auditor;
GRANT SELECT, INSERT ON dlq.dead_letters TO opsledger_aggregator;
GRANT SELECT ON dlq.dead_letters TO opsledger_query, opsledger_auditor;
-- transparency log: the aggregator grows the trees (never rewrites a node) and signs
-- checkpoints (append-only); query and auditor read both (proofs, verify --checkpoint).
GRANT USAGE ON SCHEMA tlog TO opsledger_aggregator, opsledger_query, opsledger_auditor;
REVOKE UPDATE ON ledger.merkle_nodes FROM opsledger_aggregator;
GRANT SELECT, INSERT ON tlog.checkpoints, tlog.keys TO opsledger_aggregator;
-- closures: each batch reads where its operations' tallies froze (docs/operations.md); only
-- closing an operation (the owner, or a deployment's admin writer) records one.
GRANT SELECT ON tlog.closures TO opsledger_aggregator;
REVOKE INSERT ON tlog.closures FROM opsledger_aggregator;
REVOKE UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA tlog FROM opsledger_aggregator;
GRANT SELECT ON ALL TABLES IN SCHEMA tlog TO opsledger_query, opsledger_auditor;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA tlog
    FROM opsledger_query, opsledger_auditor;

-- registrar: creating and closing operations (services/ledger/lifecycle.py) for the query
-- service's admin routes (OPSLEDGER_QUERY_OPERATIONS_DATABASE_URL), so the query role stays
-- read-only. It writes operation records, creates-or-locks a chain head (the lock every batch of
-- that operation takes: its UPDATE sets seq to itself), records the closure and the final
-- checkpoint; it reads what a checkpoint is computed from. Never events, contributions, totals.
GRANT USAGE ON SCHEMA ledger, tlog TO opsledger_registrar;
REVOKE ALL ON ALL TABLES IN SCHEMA ledger, tlog FROM opsledger_registrar;
GRANT SELECT, INSERT, UPDATE ON ledger.operations TO opsledger_registrar;
GRANT SELECT, INSERT ON ledger.chain_heads TO opsledger_registrar;
GRANT UPDATE (seq) ON ledger.chain_heads TO opsledger_registrar;
GRANT SELECT ON ledger.events, ledger.merkle_nodes TO opsledger_registrar;
GRANT SELECT, INSERT ON tlog.closures, tlog.checkpoints, tlog.keys TO opsledger_registrar;
