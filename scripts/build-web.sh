#!/usr/bin/env bash
# Vendor the browser libraries the hub's web page needs (xterm.js and its fit
# addon) into hub/web/static/vendor/ (git-ignored).
#
# Idempotent and quick when already done: when every vendored file exists and
# is newer than web-vendor/package.json (and package-lock.json), nothing runs.
# Needs node + npm (npm registry access) only when something must be installed.
#
# Usage: scripts/build-web.sh [--force]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKG_DIR="$ROOT/web-vendor"
DEST="$ROOT/hub/web/static/vendor"
NM="$PKG_DIR/node_modules"

force=0
case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-web: unknown argument: $1 (use --force or nothing)" >&2; exit 2 ;;
esac

# source (relative to node_modules) -> name in hub/web/static/vendor/
MAP=(
    "@xterm/xterm/lib/xterm.js:xterm.js"
    "@xterm/xterm/css/xterm.css:xterm.css"
    "@xterm/addon-fit/lib/addon-fit.js:addon-fit.js"
    "@xterm/xterm/LICENSE:LICENSE.xterm.txt"
    "@xterm/addon-fit/LICENSE:LICENSE.addon-fit.txt"
)

# True when every file in "$@" exists and is newer than package.json/lock.
newer_than_manifest() {
    local f
    for f in "$@"; do
        [ -f "$f" ] || return 1
        [ "$f" -nt "$PKG_DIR/package.json" ] || return 1
        if [ -f "$PKG_DIR/package-lock.json" ]; then
            [ "$f" -nt "$PKG_DIR/package-lock.json" ] || return 1
        fi
    done
    return 0
}

dest_files=()
src_files=()
for entry in "${MAP[@]}"; do
    src_files+=("$NM/${entry%%:*}")
    dest_files+=("$DEST/${entry##*:}")
done

if [ "$force" = 0 ] && newer_than_manifest "${dest_files[@]}"; then
    echo "build-web: vendor files up to date in ${DEST#"$ROOT"/}/ (nothing to do; --force to redo)"
    exit 0
fi

# npm leaves package files with their tarball mtimes (1985), so judge
# node_modules by its lock file, which npm rewrites on every install.
installed_ok() {
    local f
    [ -f "$NM/.package-lock.json" ] || return 1
    for f in "${src_files[@]}"; do [ -f "$f" ] || return 1; done
    newer_than_manifest "$NM/.package-lock.json"
}

if [ "$force" = 0 ] && installed_ok; then
    echo "build-web: web-vendor/node_modules is current; skipping npm install"
else
    if ! command -v npm >/dev/null 2>&1; then
        echo "build-web: npm not found; install Node.js (with npm) and run again" >&2
        exit 1
    fi
    echo "build-web: npm install --no-audit --no-fund (in web-vendor/)"
    (cd "$PKG_DIR" && npm install --no-audit --no-fund)
    # make sure the marker is newer than package.json even when npm did nothing
    [ -f "$NM/.package-lock.json" ] && touch "$NM/.package-lock.json"
fi

mkdir -p "$DEST"
for entry in "${MAP[@]}"; do
    src="$NM/${entry%%:*}"
    dst="$DEST/${entry##*:}"
    if [ ! -f "$src" ]; then
        echo "build-web: missing $src after npm install" >&2
        exit 1
    fi
    # copy then rename, so a running hub never serves a half-written file;
    # plain cp (no -p) gives the copy a fresh mtime for the up-to-date check
    cp "$src" "$dst.tmp.$$"
    mv -f "$dst.tmp.$$" "$dst"
    echo "build-web: ${src#"$PKG_DIR"/} -> ${dst#"$ROOT"/}"
done

version() {
    node -p "require('$NM/$1/package.json').version" 2>/dev/null ||
        sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$NM/$1/package.json" | head -n 1
}
echo "build-web: done: @xterm/xterm $(version @xterm/xterm), @xterm/addon-fit $(version @xterm/addon-fit)"
