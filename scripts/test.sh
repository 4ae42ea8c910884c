#!/usr/bin/env bash
# Run the whole test suite: installs what it needs first (see setup-test-env.sh).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not e2e and not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-test-env.sh
# Lint first: a finding fails the run (config in pyproject.toml).
.venv/bin/ruff check guestagent tests bench
exec .venv/bin/python -m pytest "$@"
