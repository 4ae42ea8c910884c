#!/usr/bin/env bash
# Stop the lab's services by the PIDs in $HEATLAB_DIR/run. Each service was
# started in its own session, so its process group (gunicorn's workers
# included) is signalled: SIGTERM, then SIGKILL after a bounded wait.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
GRACE_TENTHS=${HEATLAB_STOP_GRACE_TENTHS:-150}

lab_lock
stop_service() {
  local name=$1 pid i
  running "$name" || { rm -f "$RUN/$name.pid"; return 0; }
  pid=$(cat "$RUN/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for ((i = 0; i < GRACE_TENTHS; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "$name (pid $pid) ignored SIGTERM; SIGKILL"
  fi
  # whatever is left of the group, a stuck worker included
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid"
  log "stopped $name (pid $pid)"
}
stop_service heat
stop_service compute
stop_service keystone
