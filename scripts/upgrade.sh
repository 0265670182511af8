#!/usr/bin/env bash
# Keep current: move every lock in requirements/ to the newest releases, then run the
# whole test command on them (it rebuilds .venv from the new lock). Commit the locks when
# it passes; when it fails, the diff of requirements/ says which release to look at.
#   scripts/upgrade.sh                     every package
#   scripts/upgrade.sh NAME [NAME ...]     only these (and what they need)
#   REXEC_TEST_PASSES=sqlite scripts/upgrade.sh   one pytest pass (faster)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

if [ $# -eq 0 ]; then
  "$ROOT/scripts/lock.sh" --upgrade
else
  args=()
  for name in "$@"; do args+=(--upgrade-package "$name"); done
  "$ROOT/scripts/lock.sh" "${args[@]}"
fi
say "what changed:"
git --no-pager diff --stat -- requirements/ >&2 || true
git --no-pager diff -U0 -- requirements/*.txt 2>/dev/null | grep -E '^[-+][a-z0-9].*==' | sort -u >&2 || true
exec "$ROOT/scripts/test.sh"
