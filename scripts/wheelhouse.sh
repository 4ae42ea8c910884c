#!/usr/bin/env bash
# Build guestagent's release artifacts into dist/ (or --out DIR):
#   guestagent-VERSION-py3-none-any.whl and guestagent-VERSION.tar.gz   (python -m build)
#   guestagent-wheelhouse-VERSION-TAG.tar.gz   the agent and every dependency as wheels, with
#       requirements.txt pinning each by sha256, for offline installs (boot-config, images)
# and print the wheelhouse's sha256 (last line: "<sha256>  <path>").
# The wheelhouse is for the Python that builds it (TAG names it, e.g. cp311-linux_x86_64):
# build with the image's Python, e.g. `PYTHON=python3.9 scripts/wheelhouse.sh`.
# Options: --out DIR, --extras docker,ansible,systemd (optional parts to include).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=dist extras=""
while (($#)); do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --extras) extras=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR] [--extras a,b]" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q build >/dev/null
"$work/venv/bin/python" -m build -q --outdir "$out" . >/dev/null
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -1)
wheel="$out/guestagent-$version-py3-none-any.whl"
[ -f "$wheel" ] || { echo "wheelhouse: $wheel was not built" >&2; exit 1; }
tag=$("$work/venv/bin/python" -c 'import sys, sysconfig
print(f"cp{sys.version_info[0]}{sys.version_info[1]}-" + sysconfig.get_platform().replace("-", "_").replace(".", "_"))')
name="guestagent-wheelhouse-$version-$tag"
house="$work/$name"
mkdir "$house"
spec="$wheel"
[ -n "$extras" ] && spec="$wheel[$extras]"
"$work/venv/bin/python" -m pip wheel -q --wheel-dir "$house" "$spec" >/dev/null
# One pinned, hashed line per wheel: `pip install --require-hashes` refuses anything else.
"$work/venv/bin/python" - "$house" > "$house/requirements.txt" <<'PY'
import hashlib, pathlib, sys
for whl in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    dist, version = whl.name.split("-")[:2]
    digest = hashlib.sha256(whl.read_bytes()).hexdigest()
    print(f"{dist}=={version} --hash=sha256:{digest}")
PY
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
echo "wheel:      $wheel"
echo "sdist:      $out/guestagent-$version.tar.gz"
echo "wheelhouse: $out/$name.tar.gz ($(ls "$house" | grep -c '\.whl$') wheels)"
(cd "$out" && sha256sum "$name.tar.gz" | sed "s|  |  $out/|")
