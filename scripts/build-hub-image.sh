#!/usr/bin/env bash
# Build the hub image (Dockerfile.hub) on the local engine, from the locally made base
# image (no registry is reachable). Prints the image name.
#   scripts/build-hub-image.sh [TAG]      default tag: rexec/hub:<version>, also :latest
# Cold (no layer cached): a few minutes, mostly Debian's nodejs/npm and the Python
# dependencies. Warm, after a code change: the last layers only, well under a minute.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
tag=${1:-rexec/hub:$version}
"$ROOT/scripts/services.sh" docker
"$ROOT/scripts/base-image.sh" debian >/dev/null

# Building stages reach the package registries through this host's network: trust the
# same extra CA certificates (an intercepting proxy's). Only changed files are copied,
# so the layers that use them stay cached.
mkdir -p packaging/ca
for crt in /usr/local/share/ca-certificates/*.crt; do
  [ -f "$crt" ] || continue
  cmp -s "$crt" "packaging/ca/$(basename "$crt")" || cp "$crt" packaging/ca/
done

say "docker build $tag"
DOCKER_BUILDKIT=0 docker build -q -f Dockerfile.hub -t "$tag" -t rexec/hub:latest . >&2
echo "$tag"
