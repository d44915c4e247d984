# Common helpers for the local (Docker-free) runners. Sourced, not executed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${IDO_LOCAL_DIR:-$ROOT/.local}"   # git-ignored: binaries, jars, data, logs, pids
RUN="$STATE/run"
LOGS="$STATE/logs"
mkdir -p "$RUN" "$LOGS"

log() { printf '%s %s\n' "[$(basename "$0" .sh)]" "$*" >&2; }

is_running() {  # is_running NAME -> pid file exists and the process is alive
  local pidfile="$RUN/$1.pid"
  [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

port_open() {  # port_open HOST PORT
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_port() {  # wait_port NAME HOST PORT SECONDS
  local name=$1 host=$2 port=$3 deadline=$((SECONDS + $4))
  until port_open "$host" "$port"; do
    if ! is_running "$name"; then log "$name exited; see $LOGS/$name.log"; tail -n 30 "$LOGS/$name.log" >&2 || true; return 1; fi
    if ((SECONDS > deadline)); then log "$name not listening on $host:$port after $4s"; return 1; fi
    sleep 0.3
  done
}

start_daemon() {  # start_daemon NAME CMD... : background process, own session, pid + log files
  local name=$1; shift
  setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
}

stop_daemons() {  # stop_daemons NAME... : TERM them all at once, then stop_daemon each
  local name pid
  for name in "$@"; do
    [[ -f "$RUN/$name.pid" ]] || continue
    pid=$(cat "$RUN/$name.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for name in "$@"; do stop_daemon "$name"; done
}

stop_daemon() {  # stop_daemon NAME : TERM the process group, then KILL after 20s
  local name=$1 pidfile="$RUN/$1.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    log "stopped $name"
  fi
  rm -f "$pidfile"
}
