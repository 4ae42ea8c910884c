#!/usr/bin/env bash
# Real Swift and Zaqar beside the lab's Keystone + Heat, for the transports
# POLL_TEMP_URL, TEMP_URL_SIGNAL, ZAQAR_MESSAGE and ZAQAR_SIGNAL.
#
#   sz.sh setup              install (venvs re-used while their pins match),
#                            configure, register in the lab's Keystone, start
#   sz.sh start [SERVICE...] start all services, or the named ones
#   sz.sh stop [SERVICE...]  stop them by their PIDs (SIGTERM, then SIGKILL)
#   sz.sh status             one line each (PID, RSS); exit 0 when all run
#
# Services: redis, swift-account, swift-container, swift-object, swift-proxy
# (Swift 2.38 on one directory "device", keystoneauth + tempurl), zaqar-wsgi
# and zaqar-ws (Zaqar 23: messages in redis, queue catalog in SQLite; the
# websocket process pushes to subscribers). Everything lives in
# $HEATLAB_DIR/swiftzaqar (venvs, etc, data, logs, run); ports in sz.env.
# The Keystone + Heat lab must be set up and running (lab/setup.sh) first.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
SZHERE=$HERE/swiftzaqar
set -a
# shellcheck source=sz.env
. "$SZHERE/sz.env"
SZ=$LAB/swiftzaqar
set +a
SZRUN=$SZ/run SZLOGS=$SZ/logs
PY=${HEATLAB_PYTHON:-python3}
SERVICES=(redis swift-account swift-container swift-object swift-proxy zaqar-wsgi zaqar-ws)
WAIT_TENTHS=${SZ_START_TIMEOUT_TENTHS:-600}

mkdir -p "$SZ"/{etc/swift,data/swift/sdb1,data/zaqar,data/redis,logs,run}
# our own lock: installing must not hold the Keystone + Heat lab's
exec 8>"$SZ/.lock"
flock -w 900 8 || { echo "sz: could not lock $SZ/.lock" >&2; exit 1; }
timed() { echo "$(date -Is) swiftzaqar $1: $2 s" >> "$SZLOGS/times.log"; echo "sz: $1: $2 s"; }

# true when $SZRUN/$1.pid names a live process whose command line is ours
sz_running() {
  local pid
  pid=$(cat "$SZRUN/$1.pid" 2>/dev/null) && alive "$pid" &&
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "$SZ/"
}

# the command line of service $1 and the ports it must open
command_of() {
  local V=$SZ/venv
  case $1 in
    redis) echo "/usr/bin/redis-server $SZ/etc/redis.conf" ;;
    swift-proxy) echo "$V-swift/bin/swift-proxy-server $SZ/etc/swift/proxy-server.conf -v" ;;
    swift-*) echo "$V-swift/bin/$1-server $SZ/etc/swift/${1#swift-}-server.conf -v" ;;
    zaqar-wsgi) echo "$V-zaqar/bin/zaqar-server --config-file $SZ/etc/zaqar.conf" ;;
    zaqar-ws) echo "$V-zaqar/bin/zaqar-server --config-file $SZ/etc/zaqar.conf --config-file $SZ/etc/zaqar-ws.conf" ;;
    *) echo "sz: unknown service $1 (${SERVICES[*]})" >&2; return 2 ;;
  esac
}
ports_of() {
  case $1 in
    redis) echo "$REDIS_PORT" ;;
    swift-account) echo "$SWIFT_ACCOUNT_PORT" ;;
    swift-container) echo "$SWIFT_CONTAINER_PORT" ;;
    swift-object) echo "$SWIFT_OBJECT_PORT" ;;
    swift-proxy) echo "$SWIFT_PORT" ;;
    zaqar-wsgi) echo "$ZAQAR_PORT" ;;
    zaqar-ws) echo "$ZAQAR_WS_PORT $ZAQAR_NOTIFY_PORT" ;;
  esac
}
listening() { (exec 3<>"/dev/tcp/$LAB_HOST/$1") 2>/dev/null; }

launch() {  # NAME: start it in its own session unless it runs; do not wait
  local name=$1 cmd port
  sz_running "$name" && return 0
  cmd=$(command_of "$name")
  for port in $(ports_of "$name"); do
    if listening "$port"; then
      echo "sz: port $port ($name) is already in use by a process sz.sh did not start" >&2
      return 1
    fi
  done
  # 8>&- 9>&-: the service must not hold our lock (or the lab's)
  # shellcheck disable=SC2086
  setsid $cmd < /dev/null >> "$SZLOGS/$name.out" 2>&1 8>&- 9>&- &
  echo $! > "$SZRUN/$name.pid"
}

wait_up() {  # NAME: until its ports accept connections, or it dies, or time runs out
  local name=$1 port i
  for port in $(ports_of "$name"); do
    for ((i = 0; ; i++)); do
      listening "$port" && break
      if ! sz_running "$name"; then
        echo "sz: $name exited before port $port opened; last lines of $SZLOGS/$name.out:" >&2
        tail -15 "$SZLOGS/$name.out" >&2; return 1
      fi
      ((i < WAIT_TENTHS)) || { echo "sz: $name: port $port not open after $((WAIT_TENTHS / 10)) s" >&2; return 1; }
      sleep 0.1
    done
  done
}

start() {  # [NAME...]: all start at once, then each is waited for
  local names=("$@") name t
  ((${#names[@]})) || names=("${SERVICES[@]}")
  [ -f "$SZ/etc/zaqar.conf" ] || { echo "sz: not set up; run $0 setup" >&2; exit 1; }
  t=$(now)
  for name in "${names[@]}"; do launch "$name"; done
  for name in "${names[@]}"; do wait_up "$name"; done
  timed "start ${names[*]}" "$(since "$t")"
}

stop() {  # [NAME...]
  local names=("$@") name pid i
  ((${#names[@]})) || names=("${SERVICES[@]}")
  for name in "${names[@]}"; do
    command_of "$name" > /dev/null
    if sz_running "$name"; then
      pid=$(cat "$SZRUN/$name.pid")
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
      for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "sz: stopped $name (pid $pid)"
    fi
    rm -f "$SZRUN/$name.pid"
  done
}

status() {
  local name rc=0
  for name in "${SERVICES[@]}"; do
    if sz_running "$name"; then
      echo "sz: $name running (pid $(cat "$SZRUN/$name.pid"), rss $(ps -o rss= -p "$(cat "$SZRUN/$name.pid")" | tr -d ' ') KiB)"
    else
      echo "sz: $name not running"; rc=1
    fi
  done
  return $rc
}

# --- setup ---------------------------------------------------------------------
venv_stamp() { { cat "$SZHERE/requirements-$1.txt"; "$PY" -VV; } | sha256sum | cut -d' ' -f1; }
install_venv() {  # NAME: from exact, complete pins (--no-deps: nothing to resolve)
  local venv=$SZ/venv-$1 stamp t
  stamp=$(venv_stamp "$1")
  [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  t=$(now)
  rm -rf "$venv"
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check -q --no-deps \
    -r "$SZHERE/requirements-$1.txt" > "$SZLOGS/pip-$1.log" 2>&1 || {
    tail -20 "$SZLOGS/pip-$1.log" >&2; return 1; }
  echo "$stamp" > "$venv/.stamp"
  timed "install venv-$1 ($(du -sh "$venv" | cut -f1))" "$(since "$t")"
}
render() {  # TEMPLATE OUTPUT [NAME=VALUE...]: ${NAME} from the environment; unknown names fail
  local template=$1 out=$2; shift 2
  env "$@" "$PY" -c 'import os, string, sys
sys.stdout.write(string.Template(open(sys.argv[1]).read()).substitute(os.environ))' \
    "$template" > "$out.tmp"
  mv "$out.tmp" "$out"
}

setup() {
  local t0 t a b n
  t0=$(now)
  command -v redis-server > /dev/null || {
    echo "sz: redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
  install_venv swift & a=$!
  install_venv zaqar & b=$!
  wait $a || { echo "sz: installing swift failed, see $SZLOGS/pip-swift.log" >&2; exit 1; }
  wait $b || { echo "sz: installing zaqar failed, see $SZLOGS/pip-zaqar.log" >&2; exit 1; }

  render "$SZHERE/swift.conf.in" "$SZ/etc/swift/swift.conf"
  render "$SZHERE/proxy-server.conf.in" "$SZ/etc/swift/proxy-server.conf"
  for n in account:$SWIFT_ACCOUNT_PORT container:$SWIFT_CONTAINER_PORT object:$SWIFT_OBJECT_PORT; do
    render "$SZHERE/backend-server.conf.in" "$SZ/etc/swift/${n%%:*}-server.conf" \
      SERVER="${n%%:*}" PORT="${n##*:}"
  done
  render "$SZHERE/redis.conf.in" "$SZ/etc/redis.conf"
  render "$SZHERE/zaqar.conf.in" "$SZ/etc/zaqar.conf"
  render "$SZHERE/zaqar-ws.conf.in" "$SZ/etc/zaqar-ws.conf"
  # rings: one replica on one device, for each of account, container, object
  if [ ! -f "$SZ/etc/swift/object.ring.gz" ]; then
    for n in account:$SWIFT_ACCOUNT_PORT container:$SWIFT_CONTAINER_PORT object:$SWIFT_OBJECT_PORT; do
      ( cd "$SZ/etc/swift"
        "$SZ/venv-swift/bin/swift-ring-builder" "${n%%:*}.builder" create 10 1 1
        "$SZ/venv-swift/bin/swift-ring-builder" "${n%%:*}.builder" add \
          "r1z1-$LAB_HOST:${n##*:}/sdb1" 1
        "$SZ/venv-swift/bin/swift-ring-builder" "${n%%:*}.builder" rebalance ) > /dev/null
    done
  fi
  [ -f "$SZ/data/zaqar/zaqar.sqlite" ] ||
    "$SZ/venv-zaqar/bin/python" "$SZHERE/zaqar_schema.py" "$SZ/data/zaqar/zaqar.sqlite"
  t=$(now)
  "$LAB/venv-keystone/bin/python" "$SZHERE/register_keystone.py"
  timed "keystone registration" "$(since "$t")"
  start
  timed "setup in all" "$(since "$t0")"
}

case ${1:-} in
  setup) setup ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  status) status ;;
  *) echo "usage: $0 setup|start [SERVICE...]|stop [SERVICE...]|status" >&2; exit 2 ;;
esac
