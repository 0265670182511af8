#!/usr/bin/env bash
# Install everything the tests need, start the services they use, and run them all:
# lint (ruff), types (mypy --strict), import rules (import-linter), then pytest twice:
# on SQLite, then with every hub on PostgreSQL and Redis (REXEC_TEST_DATABASE=postgres; tests
# marked backend_independent run in the first pass only, and tests parametrised on the
# database take one backend per pass). REXEC_TEST_PASSES="sqlite" runs one pass.
# Idempotent: a second run skips what is already in place.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

started=$(date +%s)
# Debian packages the tests drive for real.
apt_install openssh-client openssh-sftp-server procps curl chromium docker.io busybox-static shellcheck \
  golang-go golang-github-gorilla-websocket-dev  # the Go SDK (sdk/go) and its tests, offline
command -v npm >/dev/null 2>&1 || apt_install npm
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || apt_install postgresql

ensure_venv dev
export PATH="$VENV/bin:$PATH"

say "web app (build, TypeScript client tests, svelte-check)"
"$ROOT/scripts/build-web.sh" --test >&2

say "docs site (MkDocs, served at /docs/)"
"$ROOT/scripts/build-docs.sh" >&2

say "TypeScript SDK (npm ci; tests/sdk runs tsc and its tests against a hub)"
(cd "$ROOT/sdk/typescript" && npm ci --no-audit --no-fund --loglevel=error) >&2

say "Docker engine and the base image for the container tests"
"$ROOT/scripts/services.sh" docker
"$ROOT/scripts/base-image.sh" busybox >/dev/null
"$ROOT/scripts/base-image.sh" debian >/dev/null  # for install.sh, once (about a minute)

say "the hub image (Dockerfile.hub; cached layers make this quick after the first build)"
"$ROOT/scripts/build-hub-image.sh" >/dev/null

say "PostgreSQL for the storage tests and the PostgreSQL pass"
REXEC_TEST_POSTGRES_URL=$("$ROOT/scripts/services.sh" postgres)
export REXEC_TEST_POSTGRES_URL
say "Redis for the several-hubs tests"
REXEC_TEST_REDIS_URL=$("$ROOT/scripts/services.sh" redis)
export REXEC_TEST_REDIS_URL

say "ruff"
ruff check .
ruff format --check .
say "mypy (strict)"
mypy
say "import rules"
lint-imports --no-cache

status=0
export REXEC_TEST_NO_SKIP=1  # everything a test needs is in place: a skip is a failure
for backend in ${REXEC_TEST_PASSES:-sqlite postgres}; do
  say "pytest, every hub on $backend"
  pass_started=$(date +%s)
  set +e
  REXEC_TEST_DATABASE=$backend pytest "$@"
  result=$?
  set -e
  say "pytest on $backend: exit $result in $(( $(date +%s) - pass_started ))s"
  [ $result -eq 0 ] || status=$result
done
say "done in $(( $(date +%s) - started ))s"
exit $status
