# Shared by the lab's scripts (sourced, not executed).
# Defines where the lab lives and small helpers; ports and credentials come
# from lab.env so that the Python side (tests/e2e/labctl.py) reads the same.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB=$(realpath -m "${HEATLAB_DIR:-/var/tmp/guestagent-heatlab}")
set -a
# shellcheck source=lab.env
. "$HERE/lab.env"
set +a
export LAB
RUN=$LAB/run
LOGS=$LAB/logs

# The lab holds venvs and databases: keep it out of any git work tree.
case "$LAB/" in
  "$(cd "$HERE/../../.." && pwd)"/*)
    echo "HEATLAB_DIR=$LAB is inside the git tree; choose a directory outside it" >&2
    exit 2 ;;
esac

now() { date +%s.%N; }
# seconds since $1 (a now value), one decimal
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "lab: $*"; }

# true while process $1 runs (a zombie nobody reaped yet counts as gone)
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# true when the PID file $RUN/$1.pid names a live process of this lab (its
# command line names $LAB), so a stale file whose PID was reused by some
# other program is never taken for, or stopped as, a lab service
running() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) && alive "$pid" &&
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$LAB/"
}

# serialise setup/start/stop between concurrent callers (e.g. two test runs)
# (a script called by one that holds the lock, e.g. setup.sh -> start.sh,
# inherits it through LAB_LOCKED instead of waiting for itself)
lab_lock() {
  [ "${LAB_LOCKED:-}" = "$LAB" ] && return 0
  mkdir -p "$LAB"
  exec 9>"$LAB/.lock"
  flock -w 900 9 || { echo "lab: could not lock $LAB/.lock" >&2; exit 1; }
  export LAB_LOCKED=$LAB
}
