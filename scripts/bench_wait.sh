#!/usr/bin/env bash
# Issue 9's A/B: two tcpd binaries against Asio (2 threads), keep-alive C = 8/64/256 and
# one-shot C = 64 (plus the inline floor and shared/bench's minimal server of tcpd's shape,
# `threadpool`), W = 8, in alternating rounds; prints medians of
# rps, server CPU µs per request and voluntary context switches per request.
# Usage: scripts/bench_wait.sh OLD_TCPD NEW_TCPD [ROUNDS] [SECONDS]
# LOADS="keepalive 8,oneshot 64" picks loads; each run's line also goes to stderr.
# Needs shared/bench beside the project (SHARED_BENCH to point elsewhere), built by its build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { sed -n '2,6p' "$0"; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2") ROUNDS=${3:-3} SECS=${4:-4}
SHARED=${SHARED_BENCH:-$PWD/../shared/bench}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for round in $(seq "$ROUNDS"); do
  IFS=, read -r -a loads <<<"${LOADS:-keepalive 8,keepalive 64,keepalive 256,oneshot 64}"
  for load in "${loads[@]}"; do
    read -r mode conc <<<"$load"
    # One source address holds one-shot loads to ~14,000 connections/s (ports in TIME_WAIT).
    lg=(); [[ $mode == oneshot ]] && lg=(--lg "--spread-src 64")
    for peer in old new asio inline threadpool; do
      case $peer in
        old | new)
          bin=$OLD; [[ $peer == new ]] && bin=$NEW
          line=$(bash "$SHARED/run.sh" ${lg[@]+"${lg[@]}"} --cmd "$bin --bind 127.0.0.1 --port {PORT} --workers {WORKERS} --quiet" \
            tcpd "$mode" "$conc" "$SECS" 8 | tail -n 1) ;;
        asio) line=$(bash "$SHARED/run.sh" ${lg[@]+"${lg[@]}"} asio "$mode" "$conc" "$SECS" 2 | tail -n 1) ;;
        inline | threadpool)
          [[ $mode == oneshot ]] || continue
          line=$(bash "$SHARED/run.sh" ${lg[@]+"${lg[@]}"} "$peer-c" "$mode" "$conc" "$SECS" 8 | tail -n 1) ;;
      esac
      echo "round=$round label=$peer $line" | tee -a "$OUT" >&2
    done
  done
done
python3 - "$OUT" <<'PY'
import collections, re, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    kv = dict(re.findall(r'(\w+)=(\S+)', line))
    req = int(kv['requests'])
    rows[(kv['mode'], int(kv['conc']), kv['label'])].append(
        (float(kv['rps']), float(kv['srv_cpu_s']) * 1e6 / req, int(kv['srv_vcs']) / req,
         int(kv['errors'])))
print("| load | server | rps | server CPU µs/req | vcs/req | errors |")
print("|---|---|---|---|---|---|")
for (mode, conc, label), r in rows.items():
    med = lambda i: statistics.median(x[i] for x in r)
    print(f"| {mode} C={conc} | {label} | {med(0):.0f} | {med(1):.2f} | {med(2):.3f} | "
          f"{sum(x[3] for x in r)} |")
PY
