#!/usr/bin/env bash
# Run the fast test tier (not e2e, not slow) on every supported Python: 3.9 .. 3.13.
# Each interpreter gets its own virtualenv (.venv-py3.X) with guestagent installed editable,
# its test tools and the optional libraries the fast tier drives (ansible-core, docker SDK).
# Interpreters are looked up under $(pyenv root)/versions/3.X.*, then as python3.X on PATH.
# Usage: scripts/test-pythons.sh [3.9 3.13 ...] [--quick] [-- extra pytest arguments]
#   --quick: only the agent subset below (what .ci/run runs on 3.9 and 3.13): the agent as a
#   process end to end, status/analyze/CLI, the local source, the ansible hook (its pin differs
#   on 3.9), templates, boot-config. About 3 minutes per Python on a loaded 2-core machine.
# Exit status: 0 when every version passed, else 1 (a missing interpreter counts as a failure).
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK_TESTS=(tests/test_units.py tests/test_end_to_end.py tests/test_cli.py
             tests/test_status_wait.py tests/test_local_unite.py tests/test_passlog.py
             tests/test_console.py tests/test_analyze.py tests/test_boot_config.py
             tests/test_templates.py tests/hooks/test_ansible.py tests/hooks/test_json_file.py)
versions=() selection=()
while (($#)) && [ "$1" != "--" ]; do
  if [ "$1" = "--quick" ]; then selection=("${QUICK_TESTS[@]}"); else versions+=("$1"); fi
  shift
done
[ "${1:-}" = "--" ] && shift
((${#versions[@]})) || versions=(3.9 3.10 3.11 3.12 3.13)
marker=${GUESTAGENT_FAST_MARKER:-not e2e and not slow}

find_python() {
  local v=$1 p
  if command -v pyenv >/dev/null 2>&1; then
    for p in "$(pyenv root)"/versions/"$v".*/bin/python"$v"; do
      [ -x "$p" ] && { echo "$p"; return; }
    done
  fi
  # A python3.X on PATH that really runs (a pyenv shim for an inactive version does not).
  p=$(command -v "python$v") && "$p" -c pass 2>/dev/null && { echo "$p"; return; }
  return 1
}

failed=()
for v in "${versions[@]}"; do
  py=$(find_python "$v") || { echo "== Python $v: interpreter not found"; failed+=("$v"); continue; }
  venv=".venv-py$v"
  echo "== Python $v ($py) in $venv"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv" || { failed+=("$v"); continue; }
  "$venv/bin/python" -m pip install -q -e ".[test,ansible,docker,zaqar-push]" >/dev/null \
    || { echo "   install failed"; failed+=("$v"); continue; }
  start=$(date +%s)
  # tests/e2e and tests/vm are the lab tier (default Python only): not even collected here.
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider --ignore=tests/e2e --ignore=tests/vm -m "$marker" "${selection[@]}" "$@"; then
    echo "== Python $v: passed in $(( $(date +%s) - start )) s"
  else
    echo "== Python $v: FAILED"; failed+=("$v")
  fi
done
if ((${#failed[@]})); then echo "failed: ${failed[*]}"; exit 1; fi
echo "all passed: ${versions[*]}"
