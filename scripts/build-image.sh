#!/usr/bin/env bash
# Build a Debian bookworm image tree with guestagent baked in (diskimage-builder).
#   scripts/build-image.sh OUTPUT [EXTRA ELEMENTS...]   e.g. scripts/build-image.sh /tmp/img/guestagent
# writes OUTPUT.tar (a root tree; use -t qcow2 via DIB_IMAGE_TYPE for a bootable disk).
# Mirrors default to the ones this machine's apt uses; the image's Python must match
# the Python that builds the wheels (bookworm: 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/build-image.sh OUTPUT [ELEMENTS...]}
shift
python=${PYTHON:-$PWD/.venv/bin/python}
dib_bin=$(dirname "$python")

sources() { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'; }
export DIB_RELEASE=${DIB_RELEASE:-bookworm}
export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-$(sources | grep -v security | grep debian | head -1)}
security=$(sources | grep security | head -1)
export DIB_DEBIAN_SECURITY_MIRROR=${DIB_DEBIAN_SECURITY_MIRROR:-${security:+$security/}}
export DIB_GUESTAGENT_BUILD_PYTHON=$python
export ELEMENTS_PATH=$PWD/diskimage-elements${ELEMENTS_PATH:+:$ELEMENTS_PATH}
export PATH=$dib_bin:$PATH
mkdir -p "$(dirname "$out")"
exec disk-image-create -t "${DIB_IMAGE_TYPE:-tar}" -o "$out" --no-tmpfs \
    debian-minimal guestagent "$@"
