-- Privileges on the objects that exist now; run as opsledger_owner after every
-- `opsledger migrate` (compose's db-grants job and the Kubernetes migrate Job do). Idempotent.
-- roles.sql's default privileges already cover new tables; this file re-asserts them for tables
-- created before the roles existed and adds the few table-specific rules.

GRANT USAGE ON SCHEMA ledger, audit TO opsledger_aggregator, opsledger_query;

-- query: read-only on the ledger; append-only on the auditors' access log.
GRANT SELECT ON ALL TABLES IN SCHEMA ledger TO opsledger_query;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA ledger FROM opsledger_query;
GRANT SELECT, INSERT ON audit.access_log TO opsledger_query;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA audit TO opsledger_query;

-- aggregator: the only writer of the read model; history is appended, never rewritten.
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA ledger TO opsledger_aggregator;
REVOKE DELETE, TRUNCATE ON ALL TABLES IN SCHEMA ledger FROM opsledger_aggregator;
REVOKE UPDATE ON ledger.events FROM opsledger_aggregator;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ledger TO opsledger_aggregator;
REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM opsledger_aggregator;

-- transparency log: the aggregator grows the trees (never rewrites a node) and signs
-- checkpoints (append-only); query reads both to answer proofs.
GRANT USAGE ON SCHEMA tlog TO opsledger_aggregator, opsledger_query;
REVOKE UPDATE ON ledger.merkle_nodes FROM opsledger_aggregator;
GRANT SELECT, INSERT ON tlog.checkpoints, tlog.keys TO opsledger_aggregator;
REVOKE UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA tlog FROM opsledger_aggregator;
GRANT SELECT ON ALL TABLES IN SCHEMA tlog TO opsledger_query;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA tlog FROM opsledger_query;
