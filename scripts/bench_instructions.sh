#!/usr/bin/env bash
# User-space instructions per keep-alive request, counted by valgrind's callgrind, for tcpd
# binaries (8 workers) and shared/bench's Asio server (2 threads). Unlike time on this shared
# machine (±15% between identical runs), the count repeats within about 2%, so a change to the
# server's own code shows even when it is a few percent of its CPU. It says nothing about the
# kernel's share (about 5/6 of the server's CPU here) or about waiting: use
# bench_serverbound.sh for those.
# Usage: scripts/bench.sh instructions [LABEL=]TCPD...   (labels default to the file names;
#   env: COUNT=40000 requests measured per run, after 2,000 of warm-up; CONCS="8 64 256")
# Needs build/release/bin/tcpc and shared/bench's asio (BENCH_BIN, default /tmp/tcpd-bench).
set -euo pipefail
[[ $# -ge 1 ]] || { sed -n '2,10p' "$0"; exit 2; }
source "$(dirname "$0")/lib/ab.sh"
ab_args "$@"
cd "$(dirname "$0")/.."
COUNT=${COUNT:-40000}
TCPC=$PWD/build/release/bin/tcpc
ASIO=${BENCH_BIN:-/tmp/tcpd-bench}/asio
ab_tools bench_instructions.sh "$TCPC" "$ASIO"
command -v callgrind_control >/dev/null || scripts/deps.sh valgrind
source scripts/lib/ports.sh
WORK=$(mktemp -d)
trap 'ab_cleanup "$WORK"' EXIT

load() {  # load PORT CONC N
  "$TCPC" --host 127.0.0.1 --port "$1" --keepalive --concurrency "$2" --threads 1 --count "$3" \
    --json --quiet >"$WORK/tcpc.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["ok"] != int(sys.argv[2]))' \
    "$WORK/tcpc.json" "$3" || { echo "bench_instructions.sh: not every request was answered" >&2; exit 1; }
}

# one LABEL CONC SERVER_ARGV...: the server gets --port appended. Counting is zeroed after the
# warm-up and dumped after the measured requests, so start-up and shutdown are not counted.
one() {
  local label=$1 conc=$2 port dump
  shift 2
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" "$@" --port "$port" \
    >"$WORK/server.log" 2>&1 &
  SPID=$!
  wait_listening "$port" 200 || { echo "bench_instructions.sh: $label did not listen" >&2; exit 1; }
  load "$port" "$conc" 2000
  callgrind_control -z "$SPID" >/dev/null 2>&1
  load "$port" "$conc" "$COUNT"
  callgrind_control -d "$SPID" >/dev/null 2>&1
  kill -TERM "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  dump=$(ls "$WORK/cg.$SPID".* | head -n 1)
  SPID=""
  echo "$conc $label $(awk '/^(summary|totals):/ {print $2; exit}' "$dump")" >>"$WORK/rows"
  echo "label=$label conc=$conc done" >&2
  rm -f "$WORK/cg."*
}

for conc in ${CONCS:-8 64 256}; do
  for i in "${!BINS[@]}"; do one "${LABELS[$i]}" "$conc" "${BINS[$i]}" --bind 127.0.0.1 --workers 8 --quiet; done
  one asio "$conc" "$ASIO" --workers 2
done

echo "| keep-alive C | server | user-space instructions per request |"
echo "|---|---|---|"
awk -v n="$COUNT" '{printf "| %s | %s | %.0f |\n", $1, $2, $3 / n}' "$WORK/rows"
