#!/usr/bin/env bash
# The VM boot test alone: build the image, boot it with qemu (KVM, else TCG) against the
# e2e lab's real Heat, run a stack, reboot twice mid-deployment. Needs root.
#   scripts/vm-boot-test.sh [PYTEST ARGS...]
# GUESTAGENT_VM_IMAGE=DIR re-uses an image from scripts/build-vm-image.sh DIR;
# GUESTAGENT_VM_ACCEL=kvm|tcg forces the accelerator. A running lab is re-used untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
export GUESTAGENT_E2E=1
exec .venv/bin/python -m pytest tests/vm -p no:cacheprovider -q -rA "$@"
