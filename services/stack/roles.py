"""The per-service database roles in the local stack, as deployments have them.

Deployments create the roles with deploy/postgres/roles.sql (psql, with passwords) and apply
deploy/postgres/grants.sql after every migration. The local cluster trusts loopback, so here the
roles need no password: this creates them if missing and applies the same grants.sql, so the
privileges tests on the real PostgreSQL (and anyone connecting as a service role) see exactly
what a deployment grants.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from services.stack.settings import repo_root

# Creates and closes operations (the CLI as owner, or the query service's admin routes).
REGISTRAR = "opsledger_registrar"
SERVICE_ROLES = (
    "opsledger_aggregator", "opsledger_query", "opsledger_auditor", REGISTRAR,
)  # fmt: skip

# Locally the migrations run as the superuser, so roles.sql's default privileges (FOR ROLE
# opsledger_owner) never fire: give every other schema's existing objects what they would have
# given, before grants.sql narrows `ledger` and `audit`.
DEFAULT_PRIVILEGES = r"""
DO $$
DECLARE s text;
BEGIN
    FOR s IN SELECT nspname FROM pg_namespace
             WHERE nspname NOT IN ('ledger', 'audit', 'public', 'information_schema')
               AND nspname NOT LIKE 'pg\_%'
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO opsledger_aggregator, opsledger_query,'
                       ' opsledger_auditor', s);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO opsledger_query,'
                       ' opsledger_auditor', s);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA %I'
                       ' TO opsledger_aggregator', s);
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I'
                       ' TO opsledger_aggregator', s);
    END LOOP;
END
$$;
"""


def grants_sql() -> Path:
    """deploy/postgres/grants.sql of this checkout."""
    return repo_root() / "deploy" / "postgres" / "grants.sql"


async def apply(database_url: str, timeout_s: float = 10.0) -> None:
    """Create the service roles (LOGIN, nothing else) if missing; apply grants.sql."""
    conn = await asyncpg.connect(database_url, timeout=timeout_s)
    try:
        async with conn.transaction():
            # Two `stack up`s at once (tests) may both try: one creates, the other waits here.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('opsledger roles'))")
            existing = {
                r["rolname"]
                for r in await conn.fetch(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])",
                    list(SERVICE_ROLES),
                )
            }
            for role in SERVICE_ROLES:
                if role not in existing:
                    await conn.execute(
                        f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
                    )
            db = await conn.fetchval("SELECT quote_ident(current_database())")
            await conn.execute(f"GRANT CONNECT ON DATABASE {db} TO {', '.join(SERVICE_ROLES)}")
            await conn.execute(DEFAULT_PRIVILEGES)
            await conn.execute(grants_sql().read_text())
    finally:
        await conn.close()


def role_url(database_url: str, role: str) -> str:
    """``database_url`` with ``role`` as its user (the local stack trusts loopback)."""
    scheme, _, rest = database_url.partition("://")
    return f"{scheme}://{role}@{rest.rpartition('@')[2]}"
