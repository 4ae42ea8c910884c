#!/usr/bin/env bash
# Start the lab's services on 127.0.0.1 and wait until each answers HTTP.
# Idempotent: a service whose PID file names a live process is left alone.
#
#   start.sh [all|keystone|heat|compute]
#
# keystone: gunicorn, port $KEYSTONE_PORT. heat: heat_allinone.py, one
# process with heat-api ($HEAT_API_PORT), heat-api-cfn ($HEAT_CFN_PORT) and
# the engine. compute: compute_stub.py ($COMPUTE_PORT). PIDs in $HEATLAB_DIR/run, logs in $HEATLAB_DIR/logs.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WHAT=${1:-all}
WAIT_SECONDS=${HEATLAB_START_TIMEOUT:-120}
PY=${HEATLAB_PYTHON:-python3}

[ -f "$LAB/etc/heat.conf" ] || { echo "lab: $LAB is not set up; run $HERE/setup.sh" >&2; exit 1; }
lab_lock
mkdir -p "$RUN" "$LOGS"

port_taken() { (exec 3<>"/dev/tcp/$LAB_HOST/$1") 2>/dev/null; }

# launch NAME URL... -- COMMAND...: start COMMAND in its own session (so
# stop.sh can end its whole process group), record its PID, wait for URLs.
launch() {
  local name=$1 urls=() port pid took
  shift
  while [ "$1" != -- ]; do urls+=("$1"); shift; done
  shift
  if running "$name"; then return 0; fi
  for url in "${urls[@]}"; do
    port=${url#http://*:}; port=${port%%/*}
    if port_taken "$port"; then
      echo "lab: port $port is already in use by a process the lab did not start" >&2
      exit 1
    fi
  done
  # 9>&-: the service must not inherit (and so keep holding) the lab lock
  setsid "$@" < /dev/null >> "$LOGS/$name.out" 2>&1 9>&- &
  pid=$!
  echo "$pid" > "$RUN/$name.pid"
  if ! took=$("$PY" "$HERE/waitup.py" "$pid" "$WAIT_SECONDS" "${urls[@]}"); then
    echo "lab: $name did not come up; last lines of $LOGS/$name.out:" >&2
    tail -20 "$LOGS/$name.out" >&2
    exit 1
  fi
  log "$name up in $took s (pid $pid)"
  echo "$(date -Is) start $name: $took s" >> "$LOGS/times.log"
}

start_keystone() {
  running keystone && return 0
  OS_KEYSTONE_CONFIG_FILES=$LAB/etc/keystone.conf \
  launch keystone "http://$LAB_HOST:$KEYSTONE_PORT/v3" -- \
    "$LAB/venv-keystone/bin/gunicorn" --no-control-socket \
    --pythonpath "$HERE" --bind "$LAB_HOST:$KEYSTONE_PORT" \
    --workers 1 --threads 8 --timeout 120 \
    --access-logfile "$LOGS/keystone-access.log" \
    keystone_wsgi:application
  "$LAB/venv-keystone/bin/python" "$HERE/keystone_warmup.py" || {
    echo "lab: keystone answers but its first token validation failed" >&2; exit 1; }
}

start_heat() {
  launch heat "http://$LAB_HOST:$HEAT_API_PORT/" "http://$LAB_HOST:$HEAT_CFN_PORT/" -- \
    "$LAB/venv-heat/bin/python" "$HERE/heat_allinone.py" --config-file "$LAB/etc/heat.conf"
}

start_compute() {
  launch compute "http://$LAB_HOST:$COMPUTE_PORT/v2.1" -- \
    "$PY" "$HERE/compute_stub.py" "$LAB_HOST" "$COMPUTE_PORT" "$LAB/"
}

case $WHAT in
  keystone) start_keystone ;;
  heat) start_heat ;;
  compute) start_compute ;;
  # Heat needs Keystone only once requests come: start them all at once
  all) start_keystone & KEYSTONE=$!; start_compute & COMPUTE=$!; start_heat
       wait $KEYSTONE; wait $COMPUTE ;;
  *) echo "usage: $0 [all|keystone|heat|compute]" >&2; exit 2 ;;
esac
