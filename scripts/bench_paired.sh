#!/usr/bin/env bash
# Paired A/B: two servers run at the same time, both on CPU 0, each in its own CPU cgroup
# capped at SHARE percent of a core, each driven by its own tcpc (one event-loop thread, both on
# CPU 1). The caps make the servers, not the clients, the bottleneck (at the default 30% the
# clients' core is about 0.6 busy: check that column), and running both at once exposes them to
# the same moment of this shared machine: alternating runs swing 0.75-1.4x from one run to the
# next, a pair moves together. So rps at the same CPU budget measures what a request costs each
# server, run by run. An A/A pair (the same binary twice) shows the method's own spread.
# A server is a path to a tcpd binary (run with --bind 127.0.0.1 --workers 8 --quiet) or one of
# shared/bench's peers: asio (2 threads), threadpool (8 workers), inline.
# Usage: scripts/bench.sh paired [LABEL=]SERVER_A [LABEL=]SERVER_B
#   env: ROUNDS=6 (rounds alternate which cgroup and which client goes first; for unlike
#   servers the two orders can differ by a few %, so keep it even), SHARE=30,
#   SECONDS_PER_RUN=4 (measured, after WARMUP=1 s that is not), LOADS="keepalive 8,keepalive 64,
#   keepalive 256" (a load "keepalive 64:8" gives A 64 connections and B 8: tcpd=BIN tcpd=BIN
#   compares tcpd at C = 64 with its own C = W figure), EXTRA_A / EXTRA_B (more flags for a tcpd
#   server: EXTRA_A="--proxy-protocol"), TCPC_A / TCPC_B (more flags for its tcpc:
#   TCPC_A="--proxy-header 2").
# Prints each round to stderr, then per load the medians, every round's A/B ratio, and each
# pair of rounds' (the two orders') geometric mean. Needs root (it makes two cgroups, removed on
# exit), build/release/bin/tcpc and shared/bench's binaries (BENCH_BIN, default /tmp/tcpd-bench).
set -euo pipefail
[[ $# -eq 2 ]] || { sed -n '2,22p' "$0"; exit 2; }
source "$(dirname "$0")/lib/ports.sh"
source "$(dirname "$0")/lib/cgroups.sh"
ROUNDS=${ROUNDS:-6} SECS=${SECONDS_PER_RUN:-4} WARMUP=${WARMUP:-1} SHARE=${SHARE:-30}
TCPC=$(realpath "$(dirname "$0")/..")/build/release/bin/tcpc
PEERS=${BENCH_BIN:-/tmp/tcpd-bench}
[[ -x $TCPC ]] || { echo "bench_paired.sh: needs $TCPC (cmake --build --preset release)" >&2; exit 2; }
[[ $SHARE =~ ^[0-9]+$ ]] && ((SHARE >= 5 && SHARE <= 50)) ||
  { echo "bench_paired.sh: SHARE=$SHARE is not a percentage from 5 to 50" >&2; exit 2; }

# server_argv I: the I-th server's argv (without --port) in ARGV: a tcpd binary, or one of
# shared/bench's peers by name.
source "$(dirname "$0")/lib/ab.sh"
ab_args "$@"
server_argv() {
  local arg=${ARGS[$1]#*=}
  case $arg in
    asio) ARGV=("$PEERS/asio" --workers 2) ;;
    threadpool) ARGV=("$PEERS/threadpool" --workers 8) ;;
    inline) ARGV=("$PEERS/inline") ;;
    *)
      local extra=${EXTRA_A:-}
      [[ $1 == 1 ]] && extra=${EXTRA_B:-}
      # shellcheck disable=SC2206
      ARGV=("${BINS[$1]}" --bind 127.0.0.1 --workers 8 --quiet $extra)
      ;;
  esac
  [[ -x ${ARGV[0]} ]] || { echo "bench_paired.sh: ${ARGV[0]} is not executable" >&2; exit 2; }
}
ARGS=("$@")
server_argv 0; LABEL_A=${LABELS[0]} ARGV_A=("${ARGV[@]}")
server_argv 1; LABEL_B=${LABELS[1]} ARGV_B=("${ARGV[@]}")
[[ $LABEL_A != "$LABEL_B" ]] || { LABEL_A+=" (A)"; LABEL_B+=" (B)"; }

# Two cgroups with a CPU cap: cgroup v1's cpu controller, or v2's cpu.max.
CG=() PIDS=() OUT=$(mktemp -d)
trap bench_cleanup EXIT
capped_cgroups tcpd-paired "$SHARE" || exit 2

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# start CGROUP PORT ARGV...: the server joins the cgroup before it execs, so every thread is in it.
start() {
  local g=$1 port=$2
  shift 2
  (echo "$BASHPID" >"$g/cgroup.procs" && exec taskset -c 0 "$@" --port "$port" >/dev/null 2>&1) &
  PIDS+=($!)
}
# client PORT MODE CONC FILE [EXTRA]
client() {
  local opts=(--keepalive)
  [[ $2 == oneshot ]] && opts=()
  # shellcheck disable=SC2206
  opts+=(${5:-})
  taskset -c 1 "$TCPC" --host 127.0.0.1 --port "$1" "${opts[@]}" --concurrency "$3" --threads 1 \
    --warmup "$WARMUP" --duration "$SECS" --json --quiet >"$4" &
}
# fields FILE: the figures of tcpc's JSON result that a round records, as key=value.
fields() {
  python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(f"{k}={d[k]}" for k in ("requests", "failed", "rps", "seconds", "client_cpu_s")))' "$1"
}

# one ROUND LOAD MODE CONC_A CONC_B: both servers, both clients, one line per server.
one() {
  local round=$1 load=$2 mode=$3 ca=$4 cb=$5 pa pb t0a t0b t1a t1b
  pa=$(free_port) pb=$(free_port)
  while [[ $pb == "$pa" ]]; do pb=$(free_port); done
  # Alternate which cgroup and which start order each server gets. The cgroup is what matters:
  # one of a pair of cgroups gets up to ~3% more done than the other, the same one for the pair's
  # life and a different one from one invocation to the next (docs/BENCHMARKS.md, "Method"); the client's start order moved nothing measurable.
  local ga=${CG[$((round % 2))]} gb=${CG[$(((round + 1) % 2))]}
  PIDS=()
  start "$ga" "$pa" "${ARGV_A[@]}"
  start "$gb" "$pb" "${ARGV_B[@]}"
  local sa=${PIDS[0]} sb=${PIDS[1]}
  wait_listening "$pa" && wait_listening "$pb" ||
    { echo "bench_paired.sh: a server did not listen" >&2; exit 1; }
  local clients=()
  if ((round % 2)); then
    client "$pa" "$mode" "$ca" "$OUT/a.json" "${TCPC_A:-}"; clients+=($!)
    client "$pb" "$mode" "$cb" "$OUT/b.json" "${TCPC_B:-}"; clients+=($!)
  else
    client "$pb" "$mode" "$cb" "$OUT/b.json" "${TCPC_B:-}"; clients+=($!)
    client "$pa" "$mode" "$ca" "$OUT/a.json" "${TCPC_A:-}"; clients+=($!)
  fi
  sleep "$WARMUP"
  t0a=$(ticks "$sa") t0b=$(ticks "$sb")
  wait "${clients[@]}" || true
  t1a=$(ticks "$sa") t1b=$(ticks "$sb")
  kill -TERM "$sa" "$sb" 2>/dev/null || true
  wait "$sa" "$sb" 2>/dev/null || true
  PIDS=()
  for side in a b; do
    [[ -s $OUT/$side.json ]] || { echo "bench_paired.sh: tcpc printed no result ($side)" >&2; exit 1; }
  done
  local hz
  hz=$(getconf CLK_TCK)
  echo "round=$round load=$load mode=$mode side=A conc=$ca ticks=$((t1a - t0a)) hz=$hz" \
    "$(fields "$OUT/a.json")" | tee -a "$OUT/runs" >&2
  echo "round=$round load=$load mode=$mode side=B conc=$cb ticks=$((t1b - t0b)) hz=$hz" \
    "$(fields "$OUT/b.json")" | tee -a "$OUT/runs" >&2
}

IFS=, read -r -a loads <<<"${LOADS:-keepalive 8,keepalive 64,keepalive 256}"
for round in $(seq "$ROUNDS"); do
  for li in "${!loads[@]}"; do
    read -r mode conc <<<"${loads[$li]}"
    [[ ($mode == keepalive || $mode == oneshot) && $conc =~ ^[0-9]+(:[0-9]+)?$ ]] ||
      { echo "bench_paired.sh: load '${loads[$li]}' is not 'keepalive|oneshot C[:C_B]'" >&2; exit 2; }
    one "$round" "$li" "$mode" "${conc%%:*}" "${conc##*:}"
  done
done

python3 - "$OUT/runs" "$LABEL_A" "$LABEL_B" "$SHARE" "$WARMUP" <<'PY'
import collections, re, statistics, sys
runs, la, lb, share, warmup = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
rows = collections.defaultdict(dict)
for line in open(runs):
    kv = dict(re.findall(r'(\w+)=(\S+)', line))
    req = int(kv['requests'])
    cpu_us = int(kv['ticks']) / int(kv['hz']) * 1e6 / max(req, 1)
    key = (int(kv['load']), int(kv['round']))
    # tcpc's CPU covers its whole run, warm-up included
    client = float(kv['client_cpu_s']) / (float(kv['seconds']) + warmup)
    rows[key][kv['side']] = (int(kv['conc']), float(kv['rps']), cpu_us, int(kv['failed']), client)
loads = collections.defaultdict(list)
modes = {}
for line in open(runs):
    kv = dict(re.findall(r'(\w+)=(\S+)', line))
    modes[int(kv['load'])] = kv['mode']
for (load, rnd), sides in sorted(rows.items()):
    loads[(load, modes[load], sides['A'][0], sides['B'][0])].append(sides)
print(f"Servers capped at {share}% of CPU 0 each, run together; A = {la}, B = {lb}.")
# Rounds 1 and 2, 3 and 4, ... ran in the two orders: their geometric mean cancels what the
# order itself does.
print("| load | A rps | B rps | A/B rps, each round | median | both orders, per pair of rounds "
      "| A / B server CPU µs/req | clients' core busy | failed |")
print("|---|---|---|---|---|---|---|---|---|")
for (_, mode, ca, cb), rs in loads.items():
    med = lambda side, i: statistics.median(r[side][i] for r in rs)
    ratios = [r['A'][1] / r['B'][1] for r in rs]
    conc = f"C={ca}" if ca == cb else f"C={ca} (A) / {cb} (B)"
    failed = sum(r[s][3] for r in rs for s in 'AB')
    pairs = [(ratios[i] * ratios[i + 1]) ** 0.5 for i in range(0, len(ratios) - 1, 2)]
    print(f"| {mode} {conc} | {med('A', 1):.0f} | {med('B', 1):.0f} | "
          f"{' '.join(f'{x:.3f}' for x in ratios)} | {statistics.median(ratios):.3f} | "
          f"{' '.join(f'{x:.3f}' for x in pairs) or '-'} | "
          f"{med('A', 2):.2f} / {med('B', 2):.2f} | "
          f"{statistics.median(r['A'][4] + r['B'][4] for r in rs):.2f} | {failed} |")
PY
