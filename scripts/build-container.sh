#!/usr/bin/env bash
# Build the guestagent container image (Containerfile) from a local base image.
#   scripts/build-container.sh BASE_IMAGE TAG
# Wheels of guestagent and its dependencies are built here and sent as the build
# context, so the build itself needs no network or registry.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/build-container.sh BASE_IMAGE TAG}
tag=${2:?usage: scripts/build-container.sh BASE_IMAGE TAG}
python=${PYTHON:-$PWD/.venv/bin/python}
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
"$python" -m pip wheel --quiet --wheel-dir "$context/wheels" .
cp Containerfile "$context/Containerfile"
DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE=$base" -t "$tag" \
    -f "$context/Containerfile" "$context"
