#!/bin/sh
# Install the Rexec agent on this server and register it with a hub:
#   curl -fsSL https://HUB/install.sh | sh -s -- --token TOKEN
# Options: --token T  --hub URL  --name N  --user U  --no-start  --no-systemd  --uninstall
# The hub serves this file with its own URL and version filled in (docs/install.md).
# Re-running upgrades in place and keeps the identity; --uninstall removes what it added.
set -eu

HUB_DEFAULT="REXEC_HUB_URL_PLACEHOLDER"
VERSION="REXEC_VERSION_PLACEHOLDER"
PREFIX=/opt/rexec-agent
CONF_DIR=/etc/rexec
CONF=$CONF_DIR/agent.toml
UNIT=/etc/systemd/system/rexec-agent.service
DROPIN=/etc/systemd/system/rexec-agent.service.d
LOG=/var/log/rexec-agent.log
PIDFILE=/run/rexec-agent.pid
STATE_DIR=/var/lib/rexec-agent

HUB=${REXEC_HUB:-$HUB_DEFAULT}
TOKEN=""
NAME=""
RUN_USER=""
START=1
SYSTEMD=auto
UNINSTALL=0

say() { printf '==> %s\n' "$*"; }
warn() { printf 'install.sh: %s\n' "$*" >&2; }
die() { warn "$*"; exit 1; }
usage() {
  cat <<'EOF'
usage: curl -fsSL HUB/install.sh | sh -s -- --token TOKEN [options]
  --token T      one-time registration token (from the hub; not needed to upgrade)
  --hub URL      the hub (default: the hub this script came from)
  --name N       the agent's name (default: the token's name, then the hostname)
  --user U       run the agent, and so its shells, as user U (default: root)
  --no-start     install and enable, but do not start the agent now
  --no-systemd   do not use systemd: start with nohup (containers, other inits)
  --uninstall    stop the agent and remove everything this script added
EOF
}

need_arg() {
  if [ $# -lt 2 ] || [ -z "$2" ]; then warn "$1 needs a value"; usage >&2; exit 2; fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --token) need_arg "$@"; TOKEN=$2; shift 2 ;;
    --hub) need_arg "$@"; HUB=$2; shift 2 ;;
    --name) need_arg "$@"; NAME=$2; shift 2 ;;
    --user) need_arg "$@"; RUN_USER=$2; shift 2 ;;
    --no-start) START=0; shift ;;
    --no-systemd) SYSTEMD=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) warn "unknown option $1"; usage >&2; exit 2 ;;
  esac
done

# -- failure handling: say which step failed; undo a fresh install ----------------------
STEP="starting"
FRESH=0        # 1 once this run created the venv (and so owns it on failure)
MADE_CONF_DIR=0
TMP=""
cleanup() {
  status=$?
  [ -n "$TMP" ] && rm -rf "$TMP"
  if [ "$status" -ne 0 ]; then
    warn "failed while $STEP (exit $status); stopping here."
    if [ "$FRESH" -eq 1 ]; then
      warn "removing the partial install ($PREFIX)"
      rm -rf "$PREFIX"
      if [ "$MADE_CONF_DIR" -eq 1 ]; then rm -rf "$CONF_DIR"; fi
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { STEP=$1; say "$1"; }

if [ "$(id -u)" -ne 0 ]; then
  die "this script must run as root: curl -fsSL ${HUB%/}/install.sh | sudo sh -s -- ..."
fi

systemd_running() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }
if [ "$SYSTEMD" = auto ]; then
  if systemd_running; then SYSTEMD=1; else SYSTEMD=0; fi
fi

# -- stopping a running agent (upgrade and uninstall) ------------------------------------
stop_nohup_agent() {
  [ -f "$PIDFILE" ] || return 0
  pid=$(cat "$PIDFILE")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    say "stopping the agent (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$PIDFILE"
}

if [ "$UNINSTALL" -eq 1 ]; then
  if [ -f "$UNIT" ] && systemd_running; then
    step "stopping and disabling rexec-agent.service"
    systemctl disable --now rexec-agent.service || true
  fi
  stop_nohup_agent
  if [ -f "$CONF" ]; then
    agent_id=$(sed -n 's/^agent_id = "\(.*\)"$/\1/p' "$CONF")
    say "this host was agent ${agent_id:-?}: delete it on the hub too (DELETE /api/agents/${agent_id:-ID})"
  fi
  step "removing $UNIT, $DROPIN"
  rm -rf "$UNIT" "$DROPIN"
  if systemd_running; then systemctl daemon-reload || true; fi
  step "removing $PREFIX, $STATE_DIR, $LOG"
  rm -rf "$PREFIX" "$STATE_DIR" "$LOG"
  step "removing the agent's config and key from $CONF_DIR"
  rm -f "$CONF" "$CONF_DIR/agent.key" "$CONF_DIR/agent.state.json" "$CONF_DIR/agent.state.json.tmp"
  rmdir "$CONF_DIR" 2>/dev/null || say "kept $CONF_DIR: it holds other files"
  STEP="done"
  say "uninstalled"
  exit 0
fi

case "$HUB" in
  *_PLACEHOLDER|"") die "no hub: pass --hub URL (or fetch this script from the hub)" ;;
  http://*|https://*) HUB=${HUB%/} ;;
  *) die "--hub must start with http:// or https://" ;;
esac
UPGRADE=0
if [ -f "$CONF" ]; then UPGRADE=1; fi
if [ "$UPGRADE" -eq 0 ] && [ -z "$TOKEN" ]; then
  die "--token is required for a first install (create one on the hub)"
fi
if [ -n "$RUN_USER" ] && ! id -u "$RUN_USER" >/dev/null 2>&1; then
  die "no such user: $RUN_USER"
fi
TMP=$(mktemp -d)

# -- fetching: curl, wget or python ------------------------------------------------------
fetch() { # URL FILE
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 2 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1"
  else
    "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$1" "$2"
  fi
}

# -- Python 3.11+ with venv --------------------------------------------------------------
PYTHON=""
python_ok() { # an interpreter 3.11+ that can make a venv with pip
  "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}
find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    if python_ok "$path"; then PYTHON=$path; return 0; fi
  done
  return 1
}
step "looking for Python 3.11+ with venv"
if ! find_python; then
  if command -v apt-get >/dev/null 2>&1; then
    step "installing python3 and python3-venv with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv
  elif command -v dnf >/dev/null 2>&1; then
    step "installing python3.11 with dnf"
    dnf install -y python3.11 || dnf install -y python3
  elif command -v apk >/dev/null 2>&1; then
    step "installing python3 with apk"
    apk add --no-cache python3 py3-pip
  else
    die "no Python 3.11+ found and no apt-get, dnf or apk to install one"
  fi
  find_python || die "no usable Python 3.11+ (with venv) even after installing one"
fi
say "using $PYTHON ($("$PYTHON" -c 'import platform; print(platform.python_version())'))"

# -- the virtual environment and the agent -----------------------------------------------
if [ -x "$PREFIX/bin/python" ] && python_ok "$PREFIX/bin/python"; then
  step "upgrading the agent in $PREFIX"
else
  step "creating a virtual environment in $PREFIX"
  if [ ! -e "$PREFIX" ] && [ "$UPGRADE" -eq 0 ]; then FRESH=1; fi
  "$PYTHON" -m venv --clear "$PREFIX"
fi
if [ ! -d "$CONF_DIR" ]; then MADE_CONF_DIR=1; fi

WHEEL="rexec-$VERSION-py3-none-any.whl"
step "downloading the agent ($WHEEL) from $HUB"
if [ "$VERSION" != "${VERSION%_PLACEHOLDER}" ] || ! fetch "$HUB/install/agent.whl" "$TMP/$WHEEL"; then
  if [ "$VERSION" != "${VERSION%_PLACEHOLDER}" ]; then SPEC='rexec[agent]'; else SPEC="rexec[agent]==$VERSION"; fi
  say "the hub offers no wheel: installing $SPEC from the package index"
  step "installing $SPEC"
  "$PREFIX/bin/pip" install --quiet --upgrade "$SPEC"
else
  step "installing the agent and its dependencies into $PREFIX"
  if fetch "$HUB/install/agent-requirements.txt" "$TMP/agent-requirements.txt"; then
    # The hub's lock: the exact versions its tests ran, each checked against its hash.
    "$PREFIX/bin/pip" install --quiet --require-hashes --no-deps -r "$TMP/agent-requirements.txt"
  else
    "$PREFIX/bin/pip" install --quiet --upgrade "$TMP/${WHEEL}[agent]"
  fi
  # The same version number may carry newer code from the hub: take the hub's copy.
  "$PREFIX/bin/pip" install --quiet --force-reinstall --no-deps "$TMP/$WHEEL"
fi
say "installed $("$PREFIX/bin/rexec-agent" --version)"

# -- identity: register once, keep it on upgrades ----------------------------------------
if [ "$UPGRADE" -eq 1 ]; then
  say "keeping the identity in $CONF (already registered)"
else
  step "registering with $HUB"
  set -- register --hub "$HUB" --token "$TOKEN" --config "$CONF"
  if [ -n "$NAME" ]; then set -- "$@" --name "$NAME"; fi
  "$PREFIX/bin/rexec-agent" "$@"
  chmod 0700 "$CONF_DIR"
  chmod 0600 "$CONF" "$CONF_DIR/agent.key"
fi
FRESH=0  # registered: from here on a failure keeps what is installed
if [ -n "$RUN_USER" ]; then
  step "letting $RUN_USER read the agent's config and key"
  mkdir -p "$STATE_DIR"
  chown "$RUN_USER" "$STATE_DIR" "$CONF" "$CONF_DIR/agent.key"
  chmod 0711 "$CONF_DIR"
  grep -q '^state_file' "$CONF" || printf 'state_file = "%s/agent.state.json"\n' "$STATE_DIR" >>"$CONF"
fi

# -- running it --------------------------------------------------------------------------
if [ "$SYSTEMD" -eq 1 ]; then
  step "installing $UNIT"
  fetch "$HUB/install/rexec-agent.service" "$TMP/rexec-agent.service"
  install -m 0644 "$TMP/rexec-agent.service" "$UNIT"
  rm -rf "$DROPIN"
  if [ -n "$RUN_USER" ]; then
    mkdir -p "$DROPIN"
    printf '[Service]\nUser=%s\n' "$RUN_USER" >"$DROPIN/user.conf"
  fi
  systemctl daemon-reload
  step "enabling rexec-agent.service"
  systemctl enable rexec-agent.service
  if [ "$START" -eq 1 ]; then
    step "starting rexec-agent.service"
    systemctl restart rexec-agent.service
    say "logs: journalctl -u rexec-agent; state: $PREFIX/bin/rexec-agent status"
  else
    say "not started (--no-start): systemctl start rexec-agent"
  fi
else
  RUN="$PREFIX/bin/rexec-agent run --config $CONF"
  if [ -n "$RUN_USER" ]; then RUN="runuser -u $RUN_USER -- $RUN"; fi
  say "no systemd: the agent runs with nohup ($RUN >>$LOG 2>&1 &)"
  if [ "$START" -eq 1 ]; then
    stop_nohup_agent
    step "starting the agent in the background"
    # shellcheck disable=SC2086 # RUN is split into words on purpose
    nohup $RUN >>"$LOG" 2>&1 </dev/null &
    echo "$!" >"$PIDFILE"
    say "started (pid $(cat "$PIDFILE")); logs in $LOG; start it at boot with your init system"
  else
    say "not started (--no-start): nohup $RUN >>$LOG 2>&1 &"
  fi
fi

if [ "$START" -eq 1 ]; then
  STEP="waiting for the agent to connect"
  i=0
  while [ "$i" -lt 30 ]; do
    if "$PREFIX/bin/rexec-agent" status --config "$CONF" --json 2>/dev/null | grep -q '"state": "connected"'; then
      say "connected to $HUB"
      break
    fi
    sleep 0.5
    i=$((i + 1))
  done
  if [ "$i" -ge 30 ]; then
    warn "the agent has not connected yet; see: $PREFIX/bin/rexec-agent status"
  fi
fi
STEP="done"
say "done"
