#!/usr/bin/env bash
# A/B with a client that is not the bottleneck: tcpc's load mode (one event-loop thread, on
# CPU 1) against tcpd binaries (8 workers) and shared/bench's Asio server (2 threads), each on
# CPU 0, in alternating rounds; one-shot loads also run shared/bench's inline floor and its
# minimal server of tcpd's shape (threadpool, 8 workers). shared/bench's loadgen drives a thread
# per connection and its core saturates first, so there rps measures the client; here the
# server's core is the one that saturates, so rps measures the server (one-shot loads bring
# the client's core near saturation too: compare CPU per request there, not rps). Prints
# medians of rps, p99, server CPU µs per request,
# context switches per request and the client's and server's share of their cores; each run's
# line also goes to stderr.
# A load with a rate ("keepalive 8 80000") has the client offer that many requests/s (tcpc
# --rate) instead of as many as the server takes: below saturation rps is the rate for every
# server, and server CPU per request and switches compare what each spends on the same load
# (less noisy than rps at saturation). RATE=R gives every load without one that rate.
# Usage: scripts/bench.sh serverbound [LABEL=]TCPD...   (labels default to the file names;
#   env: ROUNDS=3, SECONDS_PER_RUN=4 (measured, after WARMUP=1 s that is not: connections opening
#   at the start would otherwise be the latency tail), LOADS="keepalive 8,keepalive 64,
#   keepalive 256,oneshot 64")
# Needs build/release/bin/tcpc and shared/bench's binaries (BENCH_BIN, default /tmp/tcpd-bench).
set -euo pipefail
[[ $# -ge 1 ]] || { sed -n '2,20p' "$0"; exit 2; }
source "$(dirname "$0")/lib/ab.sh"
ab_args "$@"
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} SECS=${SECONDS_PER_RUN:-4} WARMUP=${WARMUP:-1}
TCPC=build/release/bin/tcpc
PEERS=${BENCH_BIN:-/tmp/tcpd-bench}
ASIO=$PEERS/asio
ab_tools bench_serverbound.sh "$TCPC" "$ASIO"
source scripts/lib/ports.sh
OUT=$(mktemp)
trap 'ab_cleanup "$OUT" "$OUT.json"' EXIT
HZ=$(getconf CLK_TCK)
# utime + stime of every thread of the process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Voluntary and involuntary context switches of every thread (the pool is fixed during a run).
switches() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {print v, n}'; }

# one LABEL MODE CONC RATE SERVER_ARGV...: one run (RATE "" for none); the server gets --port
# appended.
one() {
  local label=$1 mode=$2 conc=$3 rate=$4 port t0 t1 s0 s1 json opts=(--keepalive)
  shift 4
  [[ $mode == oneshot ]] && opts=()
  [[ -n $rate ]] && opts+=(--rate "$rate")
  port=$(free_port)
  taskset -c 0 "$@" --port "$port" >/dev/null 2>&1 &
  SPID=$!
  wait_listening "$port" || { echo "bench_serverbound.sh: $label did not listen" >&2; exit 1; }
  # The server's CPU and switches are counted from the end of the warm-up, like tcpc's figures.
  taskset -c 1 "$TCPC" --host 127.0.0.1 --port "$port" ${opts[@]+"${opts[@]}"} --concurrency \
    "$conc" --threads 1 --warmup "$WARMUP" --duration "$SECS" --json --quiet >"$OUT.json" &
  local cpid=$!
  sleep "$WARMUP"
  t0=$(cpu_ticks "$SPID") s0=($(switches "$SPID"))
  wait "$cpid" || true
  json=$(cat "$OUT.json")
  if [[ -z $json ]]; then
    echo "bench_serverbound.sh: tcpc printed no result against $label" >&2
    exit 1
  fi
  t1=$(cpu_ticks "$SPID") s1=($(switches "$SPID"))
  kill -TERM "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=""
  echo "label=$label mode=$mode conc=$conc rate=${rate:-max} warmup=$WARMUP srv_ticks=$((t1 - t0)) hz=$HZ vcs=$((s1[0] - s0[0])) nvcs=$((s1[1] - s0[1])) $(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
print(" ".join(f"{k}={d[k]}" for k in ("requests", "failed", "rps", "p99_us", "seconds", "client_cpu_s")))
' "$json")" | tee -a "$OUT" >&2
}

for round in $(seq "$ROUNDS"); do
  IFS=, read -r -a loads <<<"${LOADS:-keepalive 8,keepalive 64,keepalive 256,oneshot 64}"
  for load in "${loads[@]}"; do
    read -r mode conc rate <<<"$load"
    rate=${rate:-${RATE:-}}
    for i in "${!BINS[@]}"; do
      one "${LABELS[$i]}" "$mode" "$conc" "$rate" "${BINS[$i]}" --bind 127.0.0.1 --workers 8 --quiet
    done
    one asio "$mode" "$conc" "$rate" "$ASIO" --workers 2
    if [[ $mode == oneshot && -x $PEERS/inline && -x $PEERS/threadpool ]]; then
      one inline "$mode" "$conc" "$rate" "$PEERS/inline"
      one threadpool "$mode" "$conc" "$rate" "$PEERS/threadpool" --workers 8
    fi
  done
  echo "round $round done" >&2
done

python3 - "$OUT" <<'PY'
import collections, re, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(re.findall(r'(\w+)=(\S+)', line))
    req, secs = int(kv['requests']), float(kv['seconds'])
    srv_s = int(kv['srv_ticks']) / int(kv['hz'])
    rows[(kv['mode'], int(kv['conc']), kv['rate'], kv['label'])].append(
        (float(kv['rps']), srv_s * 1e6 / max(req, 1), srv_s / secs,
         # tcpc's CPU covers its whole run, warm-up included
         float(kv['client_cpu_s']) / (secs + float(kv['warmup'])), int(kv['failed']),
         int(kv['vcs']) / max(req, 1), int(kv['nvcs']) / max(req, 1),
         float(kv['p99_us']) if kv['p99_us'] != 'None' else float('nan')))
print("| load | server | rps | p99 µs | server CPU µs/req | voluntary / involuntary switches per req "
      "| server core busy | client core busy | failed |")
print("|---|---|---|---|---|---|---|---|---|")
for (mode, conc, rate, label), r in sorted(rows.items()):
    med = lambda i: statistics.median(x[i] for x in r)
    load = f"{mode} C={conc}" + ("" if rate == "max" else f" at {rate}/s")
    print(f"| {load} | {label} | {med(0):.0f} | {med(7):.0f} | {med(1):.2f} | {med(5):.3f} / {med(6):.3f} | "
          f"{med(2):.2f} | {med(3):.2f} | "
          f"{sum(x[4] for x in r)} |")
PY
