#!/usr/bin/env bash
# The five IDO services as local background processes (python -m services.<name>), each in
# INSTANCES instances (default 1). Instance k listens on the service's port + 100*k (intake
# 8001, 8101, ...); all instances of a service share its database and its consumer group, and
# name instance 0's address as their public base URL (links in events stay stable).
#   services.sh start | stop | status
source "$(dirname "$0")/lib.sh"

PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SERVICES=(intake routing courses subsidy reporting)
INSTANCES="${INSTANCES:-1}"
declare -A DEFAULT_PORT=([intake]=8001 [routing]=8002 [courses]=8003 [subsidy]=8004 [reporting]=8005)

port_of() { local var="${1^^}_PORT"; echo "$(( ${!var:-${DEFAULT_PORT[$1]}} + 100 * ${2:-0} ))"; }
instance_name() { if (($2 == 0)); then echo "$1"; else echo "$1-$2"; fi; }
healthy() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$1/healthz"; }

# Routing's own API credential, for fetching data keys from intake: issued once by the operator's
# `ido` (a service principal may not write the credentials topic) and renewed after 300 days.
routing_credential() {
  local file="$STATE/routing/service-credential"
  if [[ ! -s "$file" || -n "$(find "$file" -mtime +300 2>/dev/null)" ]]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && cd "$ROOT" && "$PYTHON" -m shared.cli keys create --service routing >"$file.new" 2>>"$LOGS/ido.log" &&
      mv "$file.new" "$file") || { log "could not issue routing's service credential; see $LOGS/ido.log"; return 1; }
  fi
  cat "$file"
}

# The origins the desk is served from: intake's instances, by address and by name.
desk_origins() {
  local k origins=()
  for ((k = 0; k < INSTANCES; k++)); do
    origins+=("http://127.0.0.1:$(port_of intake "$k")" "http://localhost:$(port_of intake "$k")")
  done
  (IFS=,; echo "${origins[*]}")
}

start() {
  [[ "$INSTANCES" =~ ^[1-9][0-9]*$ ]] || { log "INSTANCES must be a positive number"; return 2; }
  local name k
  if [[ -z "${ROUTING_SERVICE_CREDENTIAL:-}" ]]; then
    ROUTING_SERVICE_CREDENTIAL=$(routing_credential) || return 1
    export ROUTING_SERVICE_CREDENTIAL
  fi
  for name in "${SERVICES[@]}"; do
    for ((k = 0; k < INSTANCES; k++)); do
      local instance; instance=$(instance_name "$name" "$k")
      if is_running "$instance"; then continue; fi
      local upper="${name^^}" public="${name^^}_PUBLIC_BASE_URL" cors=""
      # The desk (a page on intake) calls courses from the browser: courses allows intake's
      # origins, every instance's, and no other (IDO_CORS_ORIGINS, an explicit allow-list).
      if [[ "$name" == courses ]]; then cors="${IDO_CORS_ORIGINS:-$(desk_origins)}"; fi
      # Each service talks to Kafka as its own principal (made by `ido topics apply`).
      local client="$STATE/kafka/clients/ido-$name.properties"
      # A local run is a demo or a test: agencies' webhook receivers are local too (in
      # production callbacks go to https on public addresses only).
      (cd "$ROOT" && if [[ -z "${KAFKA_CLIENT_CONFIG+set}" && -f "$client" ]]; then export KAFKA_CLIENT_CONFIG="$client"; fi &&
        export "${upper}_PORT=$(port_of "$name" "$k")" "IDO_CORS_ORIGINS=$cors" \
        "ROUTING_WEBHOOK_ALLOW_LOCAL=${ROUTING_WEBHOOK_ALLOW_LOCAL:-true}" \
        "$public=${!public:-http://127.0.0.1:$(port_of "$name" 0)}" &&
        start_daemon "$instance" "$PYTHON" -m "services.$name")
    done
  done
  for name in "${SERVICES[@]}"; do
    for ((k = 0; k < INSTANCES; k++)); do
      local instance port deadline=$((SECONDS + 90))
      instance=$(instance_name "$name" "$k"); port=$(port_of "$name" "$k")
      until healthy "$port"; do
        if ! is_running "$instance"; then log "$instance exited; see $LOGS/$instance.log"; tail -n 20 "$LOGS/$instance.log" >&2; return 1; fi
        if ((SECONDS > deadline)); then log "$instance not healthy after 90s; see $LOGS/$instance.log"; return 1; fi
        sleep 0.3
      done
      log "$instance healthy on http://127.0.0.1:$port (log: $LOGS/$instance.log)"
    done
  done
}

# Every instance that runs, whatever INSTANCES says now.
running_instances() { local f; for f in "$RUN"/*.pid; do [[ -e "$f" ]] && basename "$f" .pid; done; }

stop() {
  local instance name mine=()
  for instance in $(running_instances); do
    name="${instance%-[0-9]*}"
    if [[ " ${SERVICES[*]} " == *" $name "* ]]; then mine+=("$instance"); fi
  done
  stop_daemons "${mine[@]}"
}

status() {
  local rc=0 name instance k port
  for name in "${SERVICES[@]}"; do
    k=0
    while :; do
      instance=$(instance_name "$name" "$k"); port=$(port_of "$name" "$k")
      if ((k > 0)) && ! is_running "$instance"; then break; fi
      if healthy "$port"; then echo "$instance healthy on 127.0.0.1:$port"; else echo "$instance down"; rc=1; fi
      k=$((k + 1))
    done
  done
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
