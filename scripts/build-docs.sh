#!/usr/bin/env bash
# Build the docs site (MkDocs with the Material theme, mkdocs.yml) from docs/ into
# hub/web/docs/, which the hub serves at /docs/ (git-ignored: it is build output). The API
# reference page is generated from the hub's OpenAPI document (scripts/docs_hooks.py).
# Uses the dev virtualenv (requirements/dev.txt pins mkdocs and mkdocs-material).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv dev
NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict --quiet --clean
say "docs site built into hub/web/docs/ (served at /docs/)"
