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

# ensure_venv LOCK : a virtualenv built from requirements/LOCK.txt (exact versions, hashes
# checked) with this project installed editable on top, without its dependencies. Built
# anew whenever the lock, the build lock or pyproject.toml changed, so what is installed
# never depends on the day or on what the machine already had; kept otherwise.
ensure_venv() {
  local lock=$ROOT/requirements/$1.txt stamp
  [ -f "$lock" ] || die "no lock $lock (scripts/lock.sh writes it)"
  stamp="$VENV/.rexec-lock-$(cat "$lock" "$ROOT/requirements/build.txt" "$ROOT/pyproject.toml" | sha1sum | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  say "building virtualenv $VENV from requirements/$1.txt"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  pip_quiet() { "$VENV/bin/pip" install -q --disable-pip-version-check "$@" 2> >(grep -v '^WARNING: Location' >&2); }
  pip_quiet --require-hashes -r "$ROOT/requirements/build.txt"
  pip_quiet --require-hashes --no-deps -r "$lock"
  pip_quiet --no-deps --no-build-isolation -e "$ROOT"
  "$VENV/bin/pip" check >/dev/null || die "the virtualenv is inconsistent: $("$VENV/bin/pip" check | head -3)"
  "$VENV/bin/python" -c "import hub, agent" || die "installation failed"
  touch "$stamp"
}
