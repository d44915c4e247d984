#!/usr/bin/env bash
# A real Apache Kafka 4.x broker, single-node KRaft (broker + controller in one JVM),
# from the official Maven Central jars, run on the machine's JDK 17.
#   kafka.sh install | start | stop | status
source "$(dirname "$0")/lib.sh"

HOST="${KAFKA_HOST:-127.0.0.1}"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
TLS_PORT="${KAFKA_TLS_PORT:-9094}"  # the same SASL/SCRAM over TLS, as compose and production use it
HOME_DIR="$STATE/kafka"
LIBS="$HOME_DIR/libs"
DATA="$HOME_DIR/data"
CONF="$HOME_DIR/server.properties"

install() {
  [[ -f "$LIBS/.complete" ]] && return 0
  command -v java >/dev/null || { log "java (JDK 17) not found"; exit 1; }
  command -v mvn >/dev/null || { log "maven not found"; exit 1; }
  log "resolving Kafka jars from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mvn -q -B -f "$ROOT/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime
  touch "$LIBS/.complete"
}

# Secrets of the local broker, generated once, never in the repository: the administrator's
# SCRAM password (a super user, bootstrapped into the metadata when the storage is formatted)
# and the controller listener's PLAIN password (SCRAM cannot serve the controller: its
# credentials live in the metadata the controller serves). Clients find theirs in
# $CLIENTS/<principal>.properties, the Kafka client configuration format.
CLIENTS="$HOME_DIR/clients"

secret() {  # secret FILE -> a random password kept in FILE (0600)
  if [[ ! -s "$1" ]]; then
    mkdir -p "$(dirname "$1")"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$1")
  fi
  cat "$1"
}

credentials() {
  ADMIN_PASSWORD=$(secret "$HOME_DIR/secrets/admin")
  CONTROLLER_PASSWORD=$(secret "$HOME_DIR/secrets/controller")
  mkdir -p "$CLIENTS"
  (umask 077 && cat >"$CLIENTS/admin.properties" <<PROPS
bootstrap.servers=$HOST:$PORT
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
PROPS
  )
  # The same administrator over TLS (the broker's certificate, signed by a CA of its own).
  "$ROOT/deploy/kafka-tls.sh" "$HOME_DIR/tls" "$HOST" localhost
  (umask 077 && cat >"$CLIENTS/admin-tls.properties" <<PROPS
bootstrap.servers=$HOST:$TLS_PORT
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$HOME_DIR/tls/ca.pem
PROPS
  )
}

configure() {
  mkdir -p "$DATA"
  credentials
  (umask 077 && cat >"$CONF" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
# Every listener authenticates: SCRAM-SHA-512 for clients and between brokers, PLAIN for the
# controller. Plaintext transport on 127.0.0.1 only; TLS on $TLS_PORT, as in compose and production.
listeners=SASL_PLAINTEXT://$HOST:$PORT,SASL_SSL://$HOST:$TLS_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://$HOST:$PORT,SASL_SSL://$HOST:$TLS_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$HOME_DIR/tls/broker.pem
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$CONTROLLER_PASSWORD" user_controller="$CONTROLLER_PASSWORD";
# Nothing is allowed that an ACL does not allow; the administrator and the controller are
# the only super users.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
log.dirs=$DATA
# Topics are created by the project ('ido topics apply') with explicit partition counts.
auto.create.topics.enable=false
num.partitions=3
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
PROPS
  )
  cp "$ROOT/deploy/local/kafka/log4j2.properties" "$HOME_DIR/log4j2.properties"
}

JAVA=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$HOME_DIR/log4j2.properties" -cp "$LIBS/*")

format_storage() {
  # Storage formatted before authentication came (no administrator in its metadata) is made anew.
  if [[ -f "$DATA/meta.properties" && ! -f "$DATA/.scram" ]]; then
    log "storage without SCRAM credentials: formatting it again (local topics are emptied)"
    rm -rf "$DATA" && mkdir -p "$DATA"
  fi
  [[ -f "$DATA/meta.properties" ]] && return 0
  local cluster_id
  cluster_id=$("${JAVA[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  log "formatting storage (cluster $cluster_id)"
  "${JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]" >>"$LOGS/kafka.log" 2>&1
  touch "$DATA/.scram"
}

start() {
  if is_running kafka; then log "already running on $HOST:$PORT"; return 0; fi
  if port_open "$HOST" "$PORT"; then log "something already listens on $HOST:$PORT; using it"; return 0; fi
  install; configure; format_storage
  log "starting broker on $HOST:$PORT (log: $LOGS/kafka.log)"
  start_daemon kafka "${JAVA[@]}" kafka.Kafka "$CONF"
  wait_port kafka "$HOST" "$PORT" 120
  log "ready on $HOST:$PORT"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_daemon kafka ;;
  status) if is_running kafka; then echo "kafka running on $HOST:$PORT"; else echo "kafka stopped"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
