#!/usr/bin/env bash
# The five IDO services as local background processes (python -m services.<name>).
#   services.sh start | stop | status
source "$(dirname "$0")/lib.sh"

PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SERVICES=(intake routing courses subsidy reporting)
declare -A DEFAULT_PORT=([intake]=8001 [routing]=8002 [courses]=8003 [subsidy]=8004 [reporting]=8005)

port_of() { local var="${1^^}_PORT"; echo "${!var:-${DEFAULT_PORT[$1]}}"; }

healthy() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$(port_of "$1")/healthz"; }

start() {
  for name in "${SERVICES[@]}"; do
    if is_running "$name"; then continue; fi
    (cd "$ROOT" && start_daemon "$name" "$PYTHON" -m "services.$name")
  done
  for name in "${SERVICES[@]}"; do
    local deadline=$((SECONDS + 90))
    until healthy "$name"; do
      if ! is_running "$name"; then log "$name exited; see $LOGS/$name.log"; tail -n 20 "$LOGS/$name.log" >&2; return 1; fi
      if ((SECONDS > deadline)); then log "$name not healthy after 90s; see $LOGS/$name.log"; return 1; fi
      sleep 0.3
    done
    log "$name healthy on http://127.0.0.1:$(port_of "$name") (log: $LOGS/$name.log)"
  done
}

stop() { for name in "${SERVICES[@]}"; do stop_daemon "$name"; done; }

status() {
  local rc=0
  for name in "${SERVICES[@]}"; do
    if healthy "$name"; then echo "$name healthy on 127.0.0.1:$(port_of "$name")"; else echo "$name down"; rc=1; fi
  done
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
