#!/usr/bin/env bash
# Tell whether the lab's services run (by their PID files): one line each;
# exit status 0 when all do, 1 otherwise.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
status=0
for name in keystone heat compute; do
  if running "$name"; then
    log "$name running (pid $(cat "$RUN/$name.pid"))"
  else
    log "$name not running"
    status=1
  fi
done
exit $status
