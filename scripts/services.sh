#!/usr/bin/env bash
# Start the real services the tests use, idempotently, on 127.0.0.1 only.
#   scripts/services.sh postgres   -> prints a database URL
#   scripts/services.sh stop       -> stops what this script started
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PG_PORT=${REXEC_PG_PORT:-55432}

postgres() {
  command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
    || apt_install postgresql
  local bin dir
  bin=$(dirname "$(command -v pg_ctl 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/pg_ctl | tail -1)")
  dir=$STATE/pg
  mkdir -p "$STATE"
  # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    chown postgres "$STATE" 2>/dev/null || true
    as=(runuser -u postgres --)
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    say "initdb $dir"
    "${as[@]}" "$bin/initdb" -D "$dir" -U rexec --auth=trust -E UTF8 >/dev/null
  fi
  if ! "${as[@]}" "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    "${as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
      -o "-h 127.0.0.1 -p $PG_PORT -k $dir -F" start >/dev/null
  fi
  echo "postgresql+asyncpg://rexec@127.0.0.1:$PG_PORT/postgres"
}

stop() {
  local as=()
  [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
  if [ -f "$STATE/pg/postmaster.pid" ]; then
    "${as[@]}" pg_ctl -D "$STATE/pg" -m fast stop >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  postgres) postgres ;;
  stop) stop ;;
  *) echo "usage: $0 postgres|stop" >&2; exit 2 ;;
esac
