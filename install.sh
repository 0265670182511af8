#!/bin/sh
# Install the Rexec agent on this server and register it with a hub.
#   curl -fsSL https://HUB/install.sh | sh -s -- --token TOKEN [--hub URL] [--name NAME]
# This first version installs from the package index into /opt/rexec-agent and leaves
# starting to you; the systemd set-up, upgrades and --uninstall come with issue #7.
set -eu

HUB=${REXEC_HUB:-}
TOKEN=""
NAME=""
while [ $# -gt 0 ]; do
  case "$1" in
    --token) TOKEN=$2; shift 2 ;;
    --hub) HUB=$2; shift 2 ;;
    --name) NAME=$2; shift 2 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$TOKEN" ] || { echo "install.sh: --token is required" >&2; exit 2; }
[ -n "$HUB" ] || { echo "install.sh: --hub is required (or REXEC_HUB)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (curl ... | sudo sh -s -- ...)" >&2; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "install.sh: python3 (3.11+) is required" >&2; exit 1; }

echo "==> creating /opt/rexec-agent"
python3 -m venv /opt/rexec-agent
echo "==> installing the agent"
/opt/rexec-agent/bin/pip install -q 'rexec[agent]'
echo "==> registering with $HUB"
if [ -n "$NAME" ]; then
  /opt/rexec-agent/bin/rexec-agent register --hub "$HUB" --token "$TOKEN" --name "$NAME"
else
  /opt/rexec-agent/bin/rexec-agent register --hub "$HUB" --token "$TOKEN"
fi
echo "==> done: start it with /opt/rexec-agent/bin/rexec-agent run"
