#!/usr/bin/env bash
# Start the real services the tests use, idempotently, on 127.0.0.1 only.
#   scripts/services.sh postgres   -> prints a database URL
#   scripts/services.sh redis      -> prints a Redis URL
#   scripts/services.sh docker     -> a Docker engine answering on /var/run/docker.sock
#   scripts/services.sh stop       -> stops what this script started
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PG_PORT=${REXEC_PG_PORT:-55432}
REDIS_PORT=${REXEC_REDIS_PORT:-56379}

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

redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  mkdir -p "$STATE"
  if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    say "starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --save '' \
      --appendonly no --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log" >/dev/null
    for _ in $(seq 1 100); do
      redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 \
      || die "redis-server did not answer; see $STATE/redis.log"
  fi
  echo "redis://127.0.0.1:$REDIS_PORT/0"
}

docker_engine() {
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  if docker version >/dev/null 2>&1; then
    return 0
  fi
  # A stale pid file from a daemon that is gone stops dockerd from starting.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  mkdir -p "$STATE"
  say "starting dockerd"
  nohup dockerd --host unix:///var/run/docker.sock >"$STATE/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 150); do
    docker version >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "dockerd did not answer in 30 s; see $STATE/dockerd.log"
}

stop() {
  local as=()
  [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
  if [ -f "$STATE/pg/postmaster.pid" ]; then
    "${as[@]}" pg_ctl -D "$STATE/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  if [ -f "$STATE/redis.pid" ]; then
    kill "$(cat "$STATE/redis.pid")" 2>/dev/null || true
  fi
}

case "${1:-}" in
  postgres) postgres ;;
  redis) redis ;;
  docker) docker_engine ;;
  stop) stop ;;
  *) echo "usage: $0 postgres|redis|docker|stop" >&2; exit 2 ;;
esac
