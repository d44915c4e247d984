#!/bin/bash
# One-shot, as root, before anything else starts: the generated secrets, never in the repository
# or an image. Kept on their volumes; made only where missing.
# - the PostgreSQL administrator's password (ido-secrets: pgpass, admin-password);
# - the Kafka administrator's and controller's passwords and the broker's TLS key and
#   certificates (kafka-secrets, read by the broker, uid 1000);
# - the administrator's Kafka client configuration and the CA certificate for the ido image
#   (ido-secrets/kafka, uid 10001), from which `ido topics apply` makes each service's.
set -euo pipefail
IDO=/var/lib/ido/secrets
KAFKA=/var/lib/kafka-secrets
secret() { [[ -s "$1" ]] || python -c 'import secrets; print(secrets.token_urlsafe(24))' >"$1"; cat "$1"; }

if [[ ! -f "$IDO/pgpass" ]]; then
  pw=$(python -c 'import secrets; print(secrets.token_hex(24))')
  printf '%s\n' "$pw" >"$IDO/admin-password" && chmod 644 "$IDO/admin-password"
  printf '*:*:*:ido_admin:%s\n' "$pw" >"$IDO/pgpass" && chmod 600 "$IDO/pgpass"
fi

admin=$(secret "$KAFKA/admin"); secret "$KAFKA/controller" >/dev/null
bash /opt/ido/kafka-tls.sh "$KAFKA/tls" kafka localhost 127.0.0.1
chown -R 1000:1000 "$KAFKA" && chmod 600 "$KAFKA/admin" "$KAFKA/controller"

mkdir -p "$IDO/kafka"
cp "$KAFKA/tls/ca.pem" "$IDO/kafka/ca.pem"
cat >"$IDO/kafka/admin.properties" <<PROPS
bootstrap.servers=kafka:19093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
ssl.truststore.type=PEM
ssl.truststore.location=$IDO/kafka/ca.pem
PROPS
chown -R 10001:10001 "$IDO" && chmod 600 "$IDO/kafka/admin.properties" && chmod 644 "$IDO/kafka/ca.pem"
