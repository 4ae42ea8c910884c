#!/usr/bin/env bash
# Build a bootable guestagent image for qemu: OUTDIR/{rootfs.img,vmlinuz,initrd.img}.
#   scripts/build-vm-image.sh OUTDIR
# A debootstrap tree (cached in /var/cache/guestagent-tests) with a kernel and systemd,
# the guestagent diskimage element installed by its own hooks, the root filesystem made
# by mkfs.ext4 -d (no loop device). Needs root. See tests/vm/image.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-$PWD/.venv/bin/python}" -m tests.vm.image "${1:?usage: scripts/build-vm-image.sh OUTDIR}"
