-- One PostgreSQL role per opsledger process, least privilege. Run once per database, as a user
-- that may create roles (the `postgres` superuser locally, the admin user of a managed service):
--
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 \
--        -v owner_password="$PG_OWNER_PASSWORD" \
--        -v aggregator_password="$PG_AGGREGATOR_PASSWORD" \
--        -v query_password="$PG_QUERY_PASSWORD" \
--        -v auditor_password="$PG_AUDITOR_PASSWORD" \
--        -f deploy/postgres/roles.sql
--
-- Idempotent: a second run changes the passwords and nothing else.
--
--   opsledger_owner       owns the schemas: `opsledger migrate`, `opsledger rebuild`. Never
--                         used by a service at run time.
--   opsledger_aggregator  the only writer of the read model: INSERT into events, contributions,
--                         conflicts, voids (never UPDATE or DELETE them); UPDATE only chain
--                         heads, totals, consumer offsets and a void's `applied` flag (grants.sql).
--   opsledger_query       read-only on the ledger; may only append to audit.access_log.
--   opsledger_registrar   creating and closing operations for the query service's admin routes
--                         (OPSLEDGER_QUERY_OPERATIONS_DATABASE_URL): writes operation records,
--                         closures and checkpoints only. LOGIN only when -v registrar_password=..
--                         is given (optional: without it those routes answer 503).
--   opsledger_auditor     the operators' `opsledger verify|export`: read-only on the ledger;
--                         may only append to audit.access_log.
--   (ingest)              no role at all: it never touches PostgreSQL.

SELECT current_database() AS db \gset

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opsledger_owner') AS missing \gset
\if :missing
CREATE ROLE opsledger_owner LOGIN;
\endif
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opsledger_aggregator') AS missing \gset
\if :missing
CREATE ROLE opsledger_aggregator LOGIN;
\endif
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opsledger_query') AS missing \gset
\if :missing
CREATE ROLE opsledger_query LOGIN;
\endif
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opsledger_auditor') AS missing \gset
\if :missing
CREATE ROLE opsledger_auditor LOGIN;
\endif

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opsledger_registrar') AS missing \gset
\if :missing
CREATE ROLE opsledger_registrar NOLOGIN;
\endif

ALTER ROLE opsledger_owner      LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
ALTER ROLE opsledger_aggregator LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'aggregator_password';
ALTER ROLE opsledger_query      LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'query_password';
ALTER ROLE opsledger_auditor    LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'auditor_password';
\if :{?registrar_password}
ALTER ROLE opsledger_registrar  LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'registrar_password';
GRANT CONNECT ON DATABASE :"db" TO opsledger_registrar;
\endif

-- A service may connect; only the owner may create schemas (migrations, rebuild's shadow schema).
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO opsledger_aggregator, opsledger_query, opsledger_auditor;
GRANT CONNECT, CREATE, TEMPORARY ON DATABASE :"db" TO opsledger_owner;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- alembic keeps its version table in `public`.
GRANT USAGE, CREATE ON SCHEMA public TO opsledger_owner;
-- Managed services (RDS, Cloud SQL, Azure) give the admin user no superuser: it must be a member
-- of the owner role to set that role's default privileges below.
GRANT opsledger_owner TO CURRENT_USER;

-- Whatever the owner creates from now on (each migration, each rebuild's shadow schema) is
-- readable by query and writable by the aggregator without another grant.
ALTER DEFAULT PRIVILEGES FOR ROLE opsledger_owner
    GRANT USAGE ON SCHEMAS TO opsledger_aggregator, opsledger_query, opsledger_auditor;
ALTER DEFAULT PRIVILEGES FOR ROLE opsledger_owner
    GRANT SELECT ON TABLES TO opsledger_query, opsledger_auditor;
ALTER DEFAULT PRIVILEGES FOR ROLE opsledger_owner
    GRANT SELECT, INSERT, UPDATE ON TABLES TO opsledger_aggregator;
ALTER DEFAULT PRIVILEGES FOR ROLE opsledger_owner
    GRANT USAGE, SELECT ON SEQUENCES TO opsledger_aggregator;
