#!/bin/bash
# The compose broker (apache/kafka image): single-node KRaft with SASL/SCRAM-SHA-512 over TLS on
# every client listener, the StandardAuthorizer with nothing allowed that no ACL allows, and the
# administrator bootstrapped into the metadata when the storage is first formatted. Its secrets
# (passwords, TLS key and certificates) come from the `kafka-secrets` step, in $SECRETS.
set -euo pipefail
SECRETS=/var/lib/kafka-secrets
DATA=/var/lib/kafka/data
CONF=/tmp/server.properties
ADMIN=$(cat "$SECRETS/admin")
CONTROLLER=$(cat "$SECRETS/controller")
SCRAM="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$ADMIN\";"

(umask 077 && cat >"$CONF" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
# INTERNAL for the containers, EXTERNAL for tools on the host; both SASL_SSL. The controller
# listener (PLAIN, never published) serves this process only.
listeners=INTERNAL://:19093,EXTERNAL://:9092,CONTROLLER://localhost:9093
advertised.listeners=INTERNAL://kafka:19093,EXTERNAL://localhost:9092
listener.security.protocol.map=INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=$SCRAM
listener.name.external.scram-sha-512.sasl.jaas.config=$SCRAM
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$CONTROLLER" user_controller="$CONTROLLER";
ssl.keystore.type=PEM
ssl.keystore.location=$SECRETS/tls/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/tls/ca.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
log.dirs=$DATA
# Topics are made by \`ido topics apply\` with explicit partitions; a typo must fail, not create.
auto.create.topics.enable=false
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
)
# The healthcheck's client: the administrator over the internal listener.
(umask 077 && cat >/tmp/admin.properties <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$SCRAM
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/tls/ca.pem
PROPS
)
if [[ ! -f "$DATA/meta.properties" ]]; then
  /opt/kafka/bin/kafka-storage.sh format -t "$CLUSTER_ID" -c "$CONF" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN]"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$CONF"
