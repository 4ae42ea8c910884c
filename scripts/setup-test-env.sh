#!/usr/bin/env bash
# Install everything the test suite needs: Debian packages, then a virtualenv (.venv) holding
# guestagent and the Python test tools. Idempotent; run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, one group per part of the project.
APT_PACKAGES=(
  # spine: venv support, process tools used by tests
  python3-venv procps iproute2 util-linux strace
  # sources (config drive, ec2):
  genisoimage mtools dosfstools
  # hooks (puppet, docker):
  puppet docker.io docker-compose busybox-static podman
  # image (systemd, dbus, diskimage):
  systemd dbus-daemon python3-dev gcc pkg-config libdbus-1-dev libglib2.0-dev
  libgirepository1.0-dev libcairo2-dev gobject-introspection debootstrap sudo docker.io
  # e2e tier: Zaqar's message store (tests/e2e/lab/swiftzaqar)
  redis-server
  # the image booted (tests/vm): qemu, the ext4 root made by mkfs.ext4 -d
  qemu-system-x86 e2fsprogs
)

# Python packages beyond guestagent's own dependencies, one group per part.
PIP_PACKAGES=(
  # spine (ruff: the lint scripts/test.sh runs first)
  "pytest>=7" "hypothesis>=6" "ruff==0.17.6" "requests>=2.25"
  # sources (zaqar push: guestagent[zaqar-push]):
  "websocket-client>=1.6"
  # hooks:
  "ansible-core>=2.14" "docker>=6"
  # image:
  "dbus-python>=1.2" "PyGObject<3.51" "python-dbusmock>=0.30" "diskimage-builder>=3.30"
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e . "${PIP_PACKAGES[@]}"
