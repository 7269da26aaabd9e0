#!/usr/bin/env bash
# Entrypoint of the compose Kafka nodes (apache/kafka image). The image's own start formats the
# storage without SCRAM users, and SCRAM users can only be bootstrapped at format time in KRaft,
# so this renders server.properties from the KAFKA_* environment (the image's naming rule:
# KAFKA_ dropped, lower case, "_" -> ".", "..." -> "-", ".." -> "_"), formats the storage on
# first start with the users of SCRAM_USERS ("name=password,..."), then runs the broker.
set -euo pipefail
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
config=${OPSLEDGER_KAFKA_CONFIG:-/tmp/opsledger-kafka/server.properties}
umask 077 # the file holds the broker's own SCRAM password
mkdir -p "$(dirname "$config")"
: >"$config"
for name in $(compgen -e); do
  case "$name" in
    KAFKA_HEAP_OPTS | KAFKA_JVM_PERFORMANCE_OPTS | KAFKA_OPTS | KAFKA_LOG4J_OPTS | KAFKA_GC_LOG_OPTS | KAFKA_JMX_OPTS | KAFKA_DEBUG | KAFKA_HOME | KAFKA_VERSION) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//_/.}
  key=${key//.../-}
  key=${key//../_}
  printf '%s=%s\n' "$key" "${!name}" >>"$config"
done
scram=()
IFS=',' read -ra users <<<"${SCRAM_USERS:?SCRAM_USERS names the SCRAM users (name=password,...)}"
for user in "${users[@]}"; do
  scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%=*},password=${user#*=}]")
done
"$KAFKA_HOME/bin/kafka-storage.sh" format --ignore-formatted -t "${CLUSTER_ID:?}" -c "$config" "${scram[@]}"
# The admin's client settings, for the healthcheck and kafka-init (same container image).
client=$(dirname "$config")/admin.properties
cat >"$client" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="opsledger-admin" password="${ADMIN_SCRAM_PASSWORD:?}";
ssl.truststore.type=PEM
ssl.truststore.location=${KAFKA_SSL_TRUSTSTORE_LOCATION:?}
PROPS
exec "$KAFKA_HOME/bin/kafka-server-start.sh" "$config"
