#!/usr/bin/env bash
# Build the web app (web/: Svelte + TypeScript + Vite) into hub/web/static/, where the
# hub serves it and the wheel ships it (git-ignored: it is build output).
#
# Idempotent and fast: nothing runs when the app's sources, config and lock file hash
# the same as at the last build; `npm ci` runs only when package-lock.json changed.
#
# Usage: scripts/build-web.sh [--force]     build (when something changed)
#        scripts/build-web.sh --test        also run the TS client's tests (vitest)
#                                           and the type check (svelte-check)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WEB="$ROOT/web"
OUT="$ROOT/hub/web/static"
STAMP="$OUT/.build-hash"
LOCK_STAMP="$WEB/node_modules/.rexec-lock-hash"

force=0
test=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --test) test=1 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-web: unknown argument: $arg (use --force, --test or nothing)" >&2; exit 2 ;;
    esac
done

if ! command -v npm >/dev/null 2>&1; then
    echo "build-web: npm not found; install Node.js 20.19+ (with npm) and run again" >&2
    exit 1
fi

# Vite 8 needs Node.js 20.19 or newer (Debian 12's own nodejs is 18).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
    echo "build-web: Node.js $(node --version) is too old: the web app needs 20.19 or newer" >&2
    exit 1
fi

hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# The dependencies: installed exactly as locked, again only when the lock changed.
lock_hash=$(hash_of "$WEB/package.json" "$WEB/package-lock.json")
if [ "$force" = 1 ] || [ ! -f "$LOCK_STAMP" ] || [ "$(cat "$LOCK_STAMP")" != "$lock_hash" ]; then
    echo "build-web: npm ci (web/)"
    (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_hash" >"$LOCK_STAMP"
fi

# Everything the build reads, in a stable order (the app imports the SDK's sources).
inputs() {
    (cd "$WEB" && find src public index.html package-lock.json vite.config.ts svelte.config.js tsconfig.json \
        ../sdk/typescript/src -type f ! -name '*.test.ts' -print | LC_ALL=C sort)
}
src_hash=$(cd "$WEB" && inputs | tr '\n' '\0' | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)

if [ "$force" = 0 ] && [ -f "$OUT/index.html" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$src_hash" ]; then
    echo "build-web: hub/web/static/ is up to date (nothing to do; --force to rebuild)"
else
    echo "build-web: vite build -> hub/web/static/"
    (cd "$WEB" && node_modules/.bin/vite build --logLevel warn)
    echo "build-web: precompress (brotli, gzip)"
    (cd "$WEB" && node precompress.mjs "$OUT")
    echo "$src_hash" >"$STAMP"
fi

if [ "$test" = 1 ]; then
    echo "build-web: vitest (the TypeScript API client)"
    (cd "$WEB" && node_modules/.bin/vitest run --reporter=dot)
    echo "build-web: svelte-check"
    (cd "$WEB" && node_modules/.bin/svelte-check --tsconfig ./tsconfig.json --fail-on-warnings --output machine | tail -n 1)
fi
