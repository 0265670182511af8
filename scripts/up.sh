#!/usr/bin/env bash
# Bring up a working Rexec on this machine: a hub on SQLite and a local agent,
# already registered, in the background. Prints the URL and the credentials.
#   scripts/up.sh          start (or show, if already running)
#   scripts/up.sh stop     stop what it started
# Settings: REXEC_PORT (default 8080), REXEC_DEV_DIR (default .rexec-dev).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

DEV=${REXEC_DEV_DIR:-$ROOT/.rexec-dev}
PORT=${REXEC_PORT:-8080}
URL="http://127.0.0.1:$PORT"
EMAIL=admin@rexec.local

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
  for name in agent hub; do
    if alive "$DEV/$name.pid"; then
      say "stopping $name (pid $(cat "$DEV/$name.pid"))"
      kill "$(cat "$DEV/$name.pid")" || true
    fi
    rm -f "$DEV/$name.pid"
  done
}

api() { # api METHOD PATH [JSON] : call the hub, print the body, fail on an error status
  local token_header=()
  [ -n "${ACCESS:-}" ] && token_header=(-H "Authorization: Bearer $ACCESS")
  curl -fsS -X "$1" "${token_header[@]}" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$URL$2"
}

json() { "$VENV/bin/python" -c "import json,sys; print(json.load(sys.stdin)$1)"; }

if [ "${1:-}" = "stop" ]; then stop; exit 0; fi

apt_install curl
ensure_venv dev  # the same virtualenv as scripts/test.sh: one build serves both
if command -v npm >/dev/null 2>&1; then
  "$ROOT/scripts/build-web.sh" >&2 || say "web assets could not be built; the page will say so"
else
  say "npm not found: the terminal page needs it once (apt-get install npm), the API works without"
fi
"$ROOT/scripts/build-docs.sh" >&2 || say "the docs site could not be built; /docs will say so"
mkdir -p "$DEV"
chmod 700 "$DEV"

# Containers where Docker can run here: the engine and a locally built base image.
CONTAINERS="off (no Docker engine)"
if [ "$(id -u)" -eq 0 ] || docker version >/dev/null 2>&1; then
  if "$ROOT/scripts/services.sh" docker && "$ROOT/scripts/base-image.sh" busybox >/dev/null; then
    CONTAINERS="on (image rexec/busybox:1)"
  else
    say "Docker is not available: the hub runs without containers"
  fi
fi

if [ ! -f "$DEV/password" ]; then
  (umask 077; "$VENV/bin/python" -c "import secrets; print(secrets.token_urlsafe(12))" >"$DEV/password")
fi
PASSWORD=$(cat "$DEV/password")

if ! alive "$DEV/hub.pid"; then
  if [ ! -f "$DEV/hub/rexec.db" ]; then
    say "creating the account $EMAIL"
    "$VENV/bin/rexec-hub" user create --email "$EMAIL" --password "$PASSWORD" --name Admin \
      --data-dir "$DEV/hub" >/dev/null
  fi
  say "starting the hub on $URL"
  nohup "$VENV/bin/rexec-hub" serve --host 127.0.0.1 --port "$PORT" --data-dir "$DEV/hub" \
    >"$DEV/hub.log" 2>&1 </dev/null &
  echo $! >"$DEV/hub.pid"
  for _ in $(seq 1 100); do
    grep -q "listening on" "$DEV/hub.log" 2>/dev/null && break
    alive "$DEV/hub.pid" || die "the hub did not start: $(tail -n 1 "$DEV/hub.log") (log: $DEV/hub.log)"
    sleep 0.1
  done
  grep -q "listening on" "$DEV/hub.log" || die "the hub did not start in 10 s; see $DEV/hub.log"
fi

ACCESS=$(api POST /api/login "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" | json '["access_token"]')

if [ ! -f "$DEV/agent/agent.toml" ]; then
  say "registering a local agent"
  TOKEN=$(api POST /api/agents/tokens '{"name":"this machine"}' | json '["token"]')
  "$VENV/bin/rexec-agent" register --hub "$URL" --token "$TOKEN" --name "$(hostname)" \
    --config "$DEV/agent/agent.toml" >&2
fi
if ! alive "$DEV/agent.pid"; then
  say "starting the agent"
  nohup "$VENV/bin/rexec-agent" run --config "$DEV/agent/agent.toml" >"$DEV/agent.log" 2>&1 </dev/null &
  echo $! >"$DEV/agent.pid"
fi
for _ in $(seq 1 100); do
  api GET /api/agents | grep -q '"online"' && break
  sleep 0.1
done
api GET /api/agents | grep -q '"online"' || die "the agent did not come online; see $DEV/agent.log"

cat <<MSG

Rexec is running.
  open:      $URL
  email:     $EMAIL
  password:  $PASSWORD
  agent:     $(hostname) (this machine)
  containers: $CONTAINERS
  ssh:       $(sed -n 's/^ssh gateway on \(.*\)$/\1 (add a key: POST \/api\/user\/keys; docs\/ssh.md)/p' "$DEV/hub.log" | tail -n 1)
  logs:      $DEV/hub.log, $DEV/agent.log
  stop:      scripts/up.sh stop
MSG
