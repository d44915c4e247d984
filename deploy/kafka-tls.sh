#!/usr/bin/env bash
# TLS for a Kafka broker's client listeners: a private CA and a broker certificate it signs,
# in PEM (Kafka reads PEM keystores and truststores since 2.7). Made once; kept if present.
#   kafka-tls.sh DIR HOST...   ->  DIR/ca.pem (clients trust it), DIR/broker.pem (key + chain)
# The broker's certificate names every HOST (a DNS name, or an IP address) clients connect to.
set -euo pipefail
dir="$1"; shift
[[ -s "$dir/broker.pem" && -s "$dir/ca.pem" ]] && exit 0
mkdir -p "$dir"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
names=()
for host in "$@"; do
  if [[ "$host" =~ ^[0-9.]+$ ]]; then names+=("IP:$host"); else names+=("DNS:$host"); fi
done
san=$(IFS=,; echo "${names[*]}")
openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=IDO Kafka CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:3072 -nodes -subj "/CN=$1" -keyout "$work/broker.key" -out "$work/broker.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" >"$work/ext"
openssl x509 -req -days 825 -in "$work/broker.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -extfile "$work/ext" -out "$work/broker.crt" 2>/dev/null
(umask 077 && cat "$work/broker.key" "$work/broker.crt" "$work/ca.pem" >"$dir/broker.pem")
cp "$work/ca.pem" "$dir/ca.pem" && chmod 644 "$dir/ca.pem"
# The CA's key is not kept: a new broker certificate means a new CA (clients get the new ca.pem).
