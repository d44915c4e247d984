#!/usr/bin/env bash
# FerretDB v1.24.2 (MongoDB wire protocol) on the SQLite backend, telemetry off.
# Built from the Go module proxy source: `go install` of that tag panics at start because
# the module zip lacks build/version/version.txt, so we build the same source with it added.
#   ferretdb.sh install | start | stop | status
source "$(dirname "$0")/lib.sh"

VERSION="v1.24.2"
HOST="${FERRETDB_HOST:-127.0.0.1}"
PORT="${FERRETDB_PORT:-27017}"
HOME_DIR="$STATE/ferretdb"
BIN="$HOME_DIR/bin/ferretdb"

install() {
  [[ -x "$BIN" ]] && return 0
  command -v go >/dev/null || { log "go not found"; exit 1; }
  log "building FerretDB $VERSION (first run only, ~2-3 minutes)"
  local src="$HOME_DIR/src" moddir
  moddir=$(go mod download -json "github.com/FerretDB/FerretDB@$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  rm -rf "$src"; mkdir -p "$HOME_DIR/bin"
  cp -r "$moddir" "$src"; chmod -R u+w "$src"
  echo "$VERSION" >"$src/build/version/version.txt"
  (cd "$src" && GOFLAGS=-buildvcs=false go build -o "$BIN" ./cmd/ferretdb)
  rm -rf "$src"
}

start() {
  if is_running ferretdb; then log "already running on $HOST:$PORT"; return 0; fi
  if port_open "$HOST" "$PORT"; then log "something already listens on $HOST:$PORT; using it"; return 0; fi
  install
  mkdir -p "$HOME_DIR/data" "$HOME_DIR/state"
  log "starting on $HOST:$PORT (log: $LOGS/ferretdb.log)"
  start_daemon ferretdb "$BIN" --handler=sqlite --sqlite-url="file:$HOME_DIR/data/" \
    --state-dir="$HOME_DIR/state" --listen-addr="$HOST:$PORT" \
    --debug-addr="${FERRETDB_DEBUG_ADDR:-127.0.0.1:8088}" \
    --telemetry=disable --log-level="${FERRETDB_LOG_LEVEL:-WARN}" --log-format=json
  wait_port ferretdb "$HOST" "$PORT" 60
  log "ready on $HOST:$PORT"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_daemon ferretdb ;;
  status) if is_running ferretdb; then echo "ferretdb running on $HOST:$PORT"; else echo "ferretdb stopped"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
