#!/usr/bin/env bash
# docker-entrypoint-initdb.d hook for the compose `postgres` service: creates the per-service
# roles of roles.sql on first start (an empty volume), with passwords from the environment.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner_password="$PG_OWNER_PASSWORD" \
     -v aggregator_password="$PG_AGGREGATOR_PASSWORD" \
     -v query_password="$PG_QUERY_PASSWORD" \
     -v auditor_password="$PG_AUDITOR_PASSWORD" \
     -v registrar_password="$PG_REGISTRAR_PASSWORD" \
     -f /opsledger/roles.sql
