#!/bin/sh
# Entrypoint of the compose `postgres` service: PostgreSQL reads its TLS key only when the key
# belongs to it and nobody else can read it, which a bind-mounted file cannot promise; so this
# copies the key, certificate and pg_hba.conf into place as the postgres account (still root
# here), then hands over to the image's entrypoint with the server arguments of `command`.
set -eu
tls=/var/lib/postgresql/tls
install -d -o postgres -g postgres -m 0700 "$tls"
install -o postgres -g postgres -m 0600 /run/opsledger/postgres.key "$tls/server.key"
install -o postgres -g postgres -m 0644 /run/opsledger/postgres.crt "$tls/server.crt"
install -o postgres -g postgres -m 0644 /opsledger/pg_hba.conf "$tls/pg_hba.conf"
exec docker-entrypoint.sh "$@"
