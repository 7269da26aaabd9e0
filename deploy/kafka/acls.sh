#!/usr/bin/env bash
# SCRAM users and ACLs for opsledger on a self-managed Kafka (not Strimzi: there users.yaml in
# strimzi/ does the same). The brokers must already run a SASL_SSL or SASL_PLAINTEXT listener
# with SCRAM-SHA-512 and `authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer`.
#
#   KAFKA_HOME=/opt/kafka BOOTSTRAP=broker-1:9092 ADMIN_CONFIG=admin.properties \
#   INGEST_PASSWORD=... AGGREGATOR_PASSWORD=... deploy/kafka/acls.sh
#
# ADMIN_CONFIG is a client properties file for a super user. Idempotent.
set -euo pipefail
: "${KAFKA_HOME:?set KAFKA_HOME to the Kafka installation (bin/ inside)}"
: "${BOOTSTRAP:?set BOOTSTRAP to host:port of a broker}"
: "${ADMIN_CONFIG:?set ADMIN_CONFIG to an admin client properties file}"
: "${INGEST_PASSWORD:?set INGEST_PASSWORD}"
: "${AGGREGATOR_PASSWORD:?set AGGREGATOR_PASSWORD}"
TOPIC=${TOPIC:-field-events}
DLQ_TOPIC=${DLQ_TOPIC:-field-events.dlq}
GROUP=${GROUP:-opsledger-aggregator}

bin="$KAFKA_HOME/bin"
conn=(--bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG")

scram_user() {
  "$bin/kafka-configs.sh" "${conn[@]}" --alter --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$2]"
}
acl() {
  "$bin/kafka-acls.sh" "${conn[@]}" --add --allow-principal "User:$1" "${@:2}"
}

scram_user opsledger-ingest "$INGEST_PASSWORD"
scram_user opsledger-aggregator "$AGGREGATOR_PASSWORD"

# ingest: write the log, nothing else.
acl opsledger-ingest --operation Write --operation Describe --topic "$TOPIC"

# aggregator: read the log as its group (faust runs without a leader topic), write the DLQ.
acl opsledger-aggregator --operation Read --operation Describe --topic "$TOPIC"
acl opsledger-aggregator --operation Read --operation Describe --group "$GROUP"
acl opsledger-aggregator --operation Write --operation Describe --topic "$DLQ_TOPIC"

"$bin/kafka-acls.sh" "${conn[@]}" --list
