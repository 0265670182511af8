# Shared helpers for the project's scripts (sourced, not run).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${REXEC_VENV:-$ROOT/.venv}
STATE=${REXEC_STATE_DIR:-/tmp/rexec-services-$(id -u)}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_updated=""
# apt_install PKG... : install Debian packages that are missing, once.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]} (run: sudo apt-get install -y ${missing[*]})"
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_venv EXTRAS : a virtualenv with this project installed (editable) and its extras.
ensure_venv() {
  local extras=$1 stamp
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  stamp="$VENV/.rexec-$extras-$(sha1sum "$ROOT/pyproject.toml" | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    say "installing rexec[$extras] into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[$extras]" 2>&1 | grep -v '^WARNING: Location' || true
    "$VENV/bin/python" -c "import hub, agent" || die "installation failed"
    touch "$stamp"
  fi
}
