#!/usr/bin/env bash
# Runs the five services as local processes beside the engines of scripts/stack.sh.
#
#   scripts/run.sh start [service=N ...]   build is done by `make run`; start engines + services
#   scripts/run.sh stop                    SIGTERM every service (graceful), then wait
#   scripts/run.sh status                  one line per running service process
#
# Several replicas of a projector: `scripts/run.sh start projector-stats=3`
# (or `make run REPLICAS="projector-stats=3 search-indexer=2"`). Replica i of a
# projector serves health/metrics on its base port + 10*i (9102, 9112, 9122...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
BIN="$ROOT/bin"
RUN_DIR="$ROOT/.stack/services"
LOG_DIR="$ROOT/.stack/logs/services"
SERVICES=(command-api query-api projector-orders projector-stats search-indexer)

declare -A PORT=([command-api]=8080 [query-api]=8081 [projector-orders]=9101 [projector-stats]=9102 [search-indexer]=9103)

mkdir -p "$RUN_DIR" "$LOG_DIR"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_ready() { # url timeout
  local url=$1 deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}

start() {
  declare -A replicas=()
  local arg
  for arg in "$@"; do
    [[ $arg == *=* ]] || { echo "run.sh: expected service=N, got '$arg'" >&2; exit 2; }
    replicas[${arg%%=*}]=${arg#*=}
  done
  "$ROOT/scripts/stack.sh" up
  eval "$("$ROOT/scripts/stack.sh" env)"
  # One local broker: 4 partitions per topic allow 4 replicas of each
  # projector and cost far less broker and client CPU than the services'
  # production default of 12 (kafka-go fetches each partition on its own
  # connection). Set KAFKA_PARTITIONS to override; existing topics keep
  # their partition count.
  export KAFKA_PARTITIONS="${KAFKA_PARTITIONS:-4}"
  # The services' live heaps are a few MB, so the default GOGC=100 collects
  # hundreds of times a second under load; 400 trades tens of MB for a
  # quarter of that GC work (measured with bench-latency at 500 commands/s).
  export GOGC="${GOGC:-400}"
  # On a two-core box shared with the four engines, a service's second
  # scheduler thread mostly wakes up to look for work and find none: one
  # each left bench-latency's 500 commands/s p50 at 33-37 ms instead of
  # 49 ms (Postgres read model) and p95 at 110-129 ms instead of 155-175.
  if [ "$(nproc)" -le 2 ]; then export GOMAXPROCS="${GOMAXPROCS:-1}"; fi
  local svc i n port pidf
  for svc in "${SERVICES[@]}"; do
    [ -x "$BIN/$svc" ] || { echo "run.sh: $BIN/$svc missing: run 'make build' first" >&2; exit 1; }
    n=${replicas[$svc]:-1}
    for ((i = 0; i < n; i++)); do
      port=$((PORT[$svc] + 10 * i))
      pidf="$RUN_DIR/$svc-$i.pid"
      if alive "$pidf"; then
        echo "$svc[$i]: already running (pid $(cat "$pidf"))"
        continue
      fi
      HTTP_ADDR="127.0.0.1:$port" setsid nohup "$BIN/$svc" >>"$LOG_DIR/$svc-$i.log" 2>&1 </dev/null &
      echo $! >"$pidf"
      if ! wait_ready "http://127.0.0.1:$port/healthz" 30; then
        echo "$svc[$i]: did not start; last log lines:" >&2
        tail -n 30 "$LOG_DIR/$svc-$i.log" >&2
        exit 1
      fi
      echo "$svc[$i]: up on http://127.0.0.1:$port (pid $(cat "$pidf"), log $LOG_DIR/$svc-$i.log)"
    done
  done
  cat <<MSG

Command API: http://127.0.0.1:8080   (e.g. curl -XPOST -H 'Content-Type: application/json' \\
               -d '{"owner":"ada","initial_balance_cents":1000,"currency":"EUR"}' http://127.0.0.1:8080/v1/accounts)
Query API:   http://127.0.0.1:8081   (e.g. curl http://127.0.0.1:8081/v1/projections)
Projectors:  health and metrics on :9101 (orders), :9102 (stats), :9103 (search)
Stop with 'make stop'; the engines keep running until 'make stack-down'.
MSG
}

stop() {
  local pidf pid any=0
  for pidf in "$RUN_DIR"/*.pid; do
    [ -f "$pidf" ] || continue
    pid=$(cat "$pidf")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      any=1
    fi
  done
  # Services finish their in-flight work and commit offsets within their shutdown timeout.
  local deadline=$((SECONDS + 30))
  for pidf in "$RUN_DIR"/*.pid; do
    [ -f "$pidf" ] || continue
    pid=$(cat "$pidf")
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { echo "$(basename "$pidf" .pid): still running after 30s, killing" >&2; kill -KILL "$pid"; }
    rm -f "$pidf"
  done
  [ $any -eq 1 ] && echo "services stopped" || echo "no services running"
}

status() {
  local pidf found=0
  for pidf in "$RUN_DIR"/*.pid; do
    [ -f "$pidf" ] || continue
    found=1
    if alive "$pidf"; then echo "$(basename "$pidf" .pid)  up    pid $(cat "$pidf")"; else echo "$(basename "$pidf" .pid)  down"; fi
  done
  [ $found -eq 1 ] || echo "no services started"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start [service=N ...] | stop | status" >&2; exit 2 ;;
esac
