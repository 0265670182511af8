#!/usr/bin/env bash
# Write the locks in requirements/ from pyproject.toml: exact versions and hashes of every
# dependency, for every extra, the same on any platform and Python 3.11+ (uv's universal
# resolution). pyproject.toml keeps loose ranges for library users; the locks pin what we
# test and ship (scripts/test.sh, scripts/up.sh, Dockerfile.hub, install.sh's agent).
#   scripts/lock.sh                 keep every pin that still satisfies pyproject.toml
#                                   (after adding or changing a dependency)
#   scripts/lock.sh --upgrade       move every pin to the newest release
#   scripts/lock.sh --upgrade-package NAME [...]   move only these
# uv itself is pinned (requirements/uv.txt) and kept in $ROOT/.venv-tools.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

TOOLS=$ROOT/.venv-tools
if [ ! -x "$TOOLS/bin/uv" ] || ! cmp -s requirements/uv.txt "$TOOLS/.uv.txt"; then
  say "installing uv (requirements/uv.txt) into $TOOLS"
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check --require-hashes -r requirements/uv.txt
  cp requirements/uv.txt "$TOOLS/.uv.txt"
fi

args=()
while [ $# -gt 0 ]; do
  case $1 in
    --upgrade) args+=(--upgrade) ;;
    --upgrade-package) shift; args+=(--upgrade-package "$1") ;;
    *) die "unknown argument: $1 (see the comment at the top of $0)" ;;
  esac
  shift
done

compile() { # compile OUTPUT [uv args...]
  local out=$1; shift
  say "locking requirements/$out"
  UV_CUSTOM_COMPILE_COMMAND="scripts/lock.sh" "$TOOLS/bin/uv" pip compile --quiet \
    --universal --python-version 3.11 --generate-hashes \
    "${args[@]}" "$@" -o "requirements/$out"
}
for extra in agent hub cli dev; do
  compile "$extra.txt" pyproject.toml --extra "$extra"
done
# What builds the project itself (the editable install uses --no-build-isolation).
compile build.txt requirements/build.in
