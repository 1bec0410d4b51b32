#!/usr/bin/env bash
# Shell stress test: starts tcpd on a free loopback port, fires P background tcpc processes of N
# requests each plus one load-mode run of M keep-alive requests, waits, and checks that every
# client exited 0 and that the server's summary counts exactly the requests sent.
#
# Usage: scripts/stress.sh [--procs P] [--requests N] [--load M] [--workers W] [--delay MS]
#                          [--concurrency C] [--bin DIR]
# Defaults: P=16 N=500 M=20000 W=8 delay=0 C=16; bin: build/release/bin (test.sh's build), else
# build/dist/bin (run.sh's), else the dist preset is built (it needs no test-only package).
# The same knobs can be set as PROCS, REQUESTS, LOAD, WORKERS, DELAY, CONCURRENCY variables.
set -euo pipefail
cd "$(dirname "$0")/.."

P=${PROCS:-16} N=${REQUESTS:-500} M=${LOAD:-20000} W=${WORKERS:-8} D=${DELAY:-0}
C=${CONCURRENCY:-16} BIN=${BIN:-}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --procs) P=$2; shift 2 ;;
    --requests) N=$2; shift 2 ;;
    --load) M=$2; shift 2 ;;
    --workers) W=$2; shift 2 ;;
    --delay) D=$2; shift 2 ;;
    --concurrency) C=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "stress.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [[ -z $BIN ]]; then
  BIN=build/dist/bin
  [[ -x build/release/bin/tcpd && -x build/release/bin/tcpc ]] && BIN=build/release/bin
fi
if [[ ! -x "$BIN/tcpd" || ! -x "$BIN/tcpc" ]]; then
  [[ $BIN == build/dist/bin ]] || { echo "stress.sh: no tcpd and tcpc in $BIN" >&2; exit 2; }
  cmake --preset dist >/dev/null && cmake --build --preset dist --target tcpd tcpc
fi

work=$(mktemp -d)
srv_pid=""
cleanup() {
  if [[ -n "$srv_pid" ]] && kill -0 "$srv_pid" 2>/dev/null; then kill -KILL "$srv_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$BIN/tcpd" --bind 127.0.0.1 --port 0 --workers "$W" --delay-ms "$D" --queue 4096 --quiet \
  >"$work/srv.out" 2>"$work/srv.err" &
srv_pid=$!
port=""
for _ in $(seq 200); do
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/srv.out")
  [[ -n "$port" ]] && break
  kill -0 "$srv_pid" 2>/dev/null || { cat "$work/srv.err" >&2; exit 1; }
  sleep 0.05
done
[[ -n "$port" ]] || { echo "stress.sh: tcpd did not start" >&2; exit 1; }
echo "stress.sh: tcpd pid $srv_pid on 127.0.0.1:$port, $W workers, delay $D ms"
echo "stress.sh: $P processes x $N one-shot requests + $M keep-alive requests (concurrency $C)"

start=$(date +%s.%N)
pids=()
for i in $(seq "$P"); do
  timeout 300 "$BIN/tcpc" --host 127.0.0.1 --port "$port" --count "$N" --json \
    --expect "Hello from the server!" >"$work/c$i.json" 2>"$work/c$i.err" &
  pids+=($!)
done
timeout 300 "$BIN/tcpc" --host 127.0.0.1 --port "$port" --count "$M" --concurrency "$C" \
  --keepalive --json --expect "Hello from the server!" >"$work/load.json" 2>"$work/load.err" &
pids+=($!)

bad=0
for pid in "${pids[@]}"; do
  wait "$pid" || bad=$((bad + 1))
done
end=$(date +%s.%N)

kill -TERM "$srv_pid"
for _ in $(seq 300); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.05; done
wait "$srv_pid"; srv_rc=$?
srv_pid=""
summary=$(grep 'summary' "$work/srv.err" | tail -n 1)
get() { echo "$summary" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }

sent=$((P * N + M))
ok_total=$(cat "$work"/*.json | sed -n 's/.*"ok":\([0-9]*\).*/\1/p' | awk '{s+=$1} END{print s+0}')
requests=$(get requests) accepted=$(get accepted) served=$(get served) noreq=$(get no_request)
# A connection per one-shot request and one per keep-alive thread: the connection with which
# tcpc finds the server's address is its first, so none arrives without a request.
expect_conns=$((P * N + C))

echo "stress.sh: clients failed: $bad; replies ok: $ok_total of $sent; $(awk -v a="$start" -v b="$end" -v n="$sent" 'BEGIN{printf "%.2f s, %.0f req/s", b-a, n/(b-a)}')"
echo "stress.sh: server: $summary"
fail=0
[[ $bad -eq 0 ]] || { echo "stress.sh: FAIL: $bad client processes exited non-zero"; cat "$work"/*.err | head -n 20; fail=1; }
[[ $srv_rc -eq 0 ]] || { echo "stress.sh: FAIL: tcpd exited $srv_rc"; fail=1; }
[[ "$ok_total" -eq "$sent" ]] || { echo "stress.sh: FAIL: clients got $ok_total replies for $sent requests"; fail=1; }
[[ "$requests" == "$sent" ]] || { echo "stress.sh: FAIL: server answered $requests requests, clients sent $sent (lost or doubled)"; fail=1; }
[[ "$accepted" == "$expect_conns" ]] || { echo "stress.sh: FAIL: server accepted $accepted connections, expected $expect_conns"; fail=1; }
[[ "$served" == "$accepted" && "$noreq" == 0 ]] || { echo "stress.sh: FAIL: served=$served no_request=$noreq, accepted=$accepted"; fail=1; }
[[ $fail -eq 0 ]] && echo "stress.sh: PASS: nothing lost, nothing doubled"
exit $fail
