#!/usr/bin/env bash
# Set up guestagent in a virtualenv and run one pass against the bundled local example:
# a script deployment read from examples/local-data, run, and shown by `guestagent status`.
# No cloud needed. State goes to examples/state (delete it to run the example again).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
  else
    echo "python3-venv is missing: run 'sudo apt-get install python3-venv' first" >&2; exit 2
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e .
chmod 0755 examples/local-data  # the local source refuses directories others may write
state=examples/state
set +e
.venv/bin/guestagent --once --config /dev/null --collectors local \
  --local-path examples/local-data --state-dir "$state" --deployed-dir "$state/none"
rc=$?
set -e
echo
.venv/bin/guestagent status --config /dev/null --state-dir "$state"
echo
echo "The script's output (deploy_stdout) and its declared output 'result':"
.venv/bin/python - "$state" <<'PY'
import json, pathlib, sys
for resp in sorted(pathlib.Path(sys.argv[1], "deployments").glob("*/response.json")):
    reply = json.loads(resp.read_text())
    print(reply["deploy_stdout"], end="")
    print("result =", reply.get("result"))
PY
exit $rc
