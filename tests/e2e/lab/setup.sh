#!/usr/bin/env bash
# Install, configure and bootstrap a real Keystone + Heat on 127.0.0.1 for
# the e2e tier, then start it (start.sh). Everything lives in $HEATLAB_DIR
# (default /var/tmp/guestagent-heatlab), never in the git tree.
#
#   setup.sh              re-use venvs and a bootstrapped lab if their inputs
#                         (pins, configuration, the setup and bootstrap
#                         scripts) are unchanged; redo only what is not
#   setup.sh --fresh      wipe databases and keys, bootstrap again
#   setup.sh --reinstall  recreate the venvs as well (implies --fresh)
#
# Stop the lab with stop.sh. Step times are printed and kept in
# $HEATLAB_DIR/logs/times.log.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FRESH=0 REINSTALL=0
for arg in "$@"; do
  case $arg in
    --fresh) FRESH=1 ;;
    --reinstall) FRESH=1 REINSTALL=1 ;;
    *) echo "usage: $0 [--fresh] [--reinstall]" >&2; exit 2 ;;
  esac
done
PY=${HEATLAB_PYTHON:-python3}

lab_lock
mkdir -p "$LAB"/{etc/heat-plugins,data,keys,logs,run}
T0=$(now)
timed() { echo "$(date -Is) $1: $2 s" >> "$LOGS/times.log"; log "$1: $2 s"; }

# --- 1. virtualenvs, one per service, from exact pins -----------------------
# A venv is re-used while its stamp (pins + interpreter) matches. The pins
# are complete, so pip need not resolve (--no-deps). The two installs run
# side by side: they are mostly waiting on downloads. pip's cache keeps the
# wheels it builds (ovs); the index's answers here carry no cache headers,
# so downloads are not cached.
venv_stamp() { { cat "$HERE/requirements-$1.txt"; "$PY" -VV; } | sha256sum | cut -d' ' -f1; }
install_venv() {
  local venv=$LAB/venv-$1 stamp t
  stamp=$(venv_stamp "$1")
  if [ "$REINSTALL" = 0 ] && [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  t=$(now)
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check -q --no-deps \
    -r "$HERE/requirements-$1.txt" > "$LOGS/pip-$1.log" 2>&1 || {
    tail -20 "$LOGS/pip-$1.log" >&2; return 1; }
  echo "$stamp" > "$venv/.stamp"
  timed "install venv-$1 ($(du -sh "$venv" | cut -f1))" "$(since "$t")"
}
T=$(now)
install_venv keystone & KPID=$!
install_venv heat & HPID=$!
wait $KPID || { echo "lab: installing keystone failed, see $LOGS/pip-keystone.log" >&2; exit 1; }
wait $HPID || { echo "lab: installing heat failed, see $LOGS/pip-heat.log" >&2; exit 1; }
timed "venvs ready" "$(since "$T")"

# --- 2. configuration --------------------------------------------------------
# ${NAME} in the templates comes from lab.env and LAB; an unknown name fails.
render() {
  "$PY" -c 'import os, string, sys
sys.stdout.write(string.Template(open(sys.argv[1]).read()).substitute(os.environ))' "$1" > "$2.tmp"
  mv "$2.tmp" "$2"
}
render "$HERE/keystone.conf.in" "$LAB/etc/keystone.conf"
render "$HERE/heat.conf.in" "$LAB/etc/heat.conf"
cp "$HERE/heat-policy.yaml" "$LAB/etc/heat-policy.yaml"

# --- 3. bootstrap, when the lab's inputs changed or on request -------------
# The stamp covers what the bootstrap depends on; after editing only the
# services' Python files, stop.sh + start.sh is enough.
STAMP=$(cat "$LAB/etc/keystone.conf" "$LAB/etc/heat.conf" "$HERE/lab.env" \
          "$HERE/setup.sh" "$HERE/bootstrap_keystone.py" "$HERE/sqlite_autoincrement.py" \
          "$LAB"/venv-*/.stamp \
        | sha256sum | cut -d' ' -f1)
if [ "$FRESH" = 0 ] && [ "$(cat "$LAB/data/.stamp" 2>/dev/null)" = "$STAMP" ]; then
  log "re-using the bootstrapped lab in $LAB (setup.sh --fresh to redo it)"
else
  "$HERE/stop.sh"
  rm -rf "$LAB/data" "$LAB/keys"
  # a new lab starts new service logs; times.log keeps the history
  find "$LOGS" -maxdepth 1 -type f ! -name times.log ! -name '*.sh.out' -delete
  mkdir -p "$LAB/data/locks" "$LAB/keys"
  T=$(now)
  # Heat's schema does not depend on Keystone: build it meanwhile
  "$LAB/venv-heat/bin/heat-manage" --config-file "$LAB/etc/heat.conf" db_sync \
    > "$LOGS/heat-manage.log" 2>&1 & HEATDB=$!
  # keystone-manage costs ~1.7 s of imports per command: run the independent
  # ones side by side
  km() {
    "$LAB/venv-keystone/bin/keystone-manage" --config-file "$LAB/etc/keystone.conf" "$@" \
      >> "$LOGS/keystone-manage.log" 2>&1
  }
  : > "$LOGS/keystone-manage.log"
  km fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" & FERNET=$!
  # credential keys: Heat stores EC2 key pairs (the CFN transports) as credentials
  km credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)" & CRED=$!
  km db_sync && km bootstrap --bootstrap-password "$ADMIN_PASSWORD" \
    --bootstrap-region-id "$REGION" \
    --bootstrap-public-url "http://$LAB_HOST:$KEYSTONE_PORT/v3" \
    --bootstrap-internal-url "http://$LAB_HOST:$KEYSTONE_PORT/v3" \
    --bootstrap-admin-url "http://$LAB_HOST:$KEYSTONE_PORT/v3" & KDB=$!
  for job in $FERNET $CRED $KDB; do
    wait "$job" || { tail -20 "$LOGS/keystone-manage.log" >&2; exit 1; }
  done
  timed "keystone-manage (keys, db_sync, bootstrap)" "$(since "$T")"
  "$HERE/start.sh" keystone
  T=$(now)
  "$LAB/venv-keystone/bin/python" "$HERE/bootstrap_keystone.py"
  timed "keystone objects for heat" "$(since "$T")"
  wait $HEATDB || { tail -20 "$LOGS/heat-manage.log" >&2; exit 1; }
  # SQLite would re-use deleted ids, which Heat's updates do not survive
  "$LAB/venv-heat/bin/python" "$HERE/sqlite_autoincrement.py" "$LAB/data/heat.sqlite"
  echo "$STAMP" > "$LAB/data/.stamp"
fi

"$HERE/start.sh"
timed "setup.sh in all" "$(since "$T0")"
