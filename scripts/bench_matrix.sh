#!/usr/bin/env bash
# End-to-end benchmark matrix: tcpd against the comparison servers in shared/bench (a
# single-threaded inline server, the floor; a minimal thread pool of our shape, the baseline),
# each run with the server on CPU 0 and the load generator on CPU 1 (shared/bench/run.sh).
# Writes build/bench/results.csv, build/bench/summary.md and PNG plots (gnuplot).
#
# Usage: scripts/bench.sh matrix [--reps N] [--seconds S] [--quick] [--only SECTION]
#   SECTION: oneshot keepalive pool fairness memory generator scale   (default: all)
#   --quick: 1 repetition of 2 s each (for a smoke run; figures are noisy)
# Needs shared/bench beside the project (SHARED_BENCH to point elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

REPS=3 SECS=4 ONLY=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --quick) REPS=1; SECS=2; shift ;;
    --only) ONLY=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench.sh matrix: unknown option $1" >&2; exit 2 ;;
  esac
done

SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
[[ -x "$SHARED/run.sh" || -f "$SHARED/run.sh" ]] || { echo "bench.sh: no $SHARED/run.sh (set SHARED_BENCH)" >&2; exit 1; }
scripts/deps.sh gnuplot-nox
cmake --preset release >/dev/null
cmake --build --preset release --target tcpd tcpc >/dev/null
export BENCH_BIN=${BENCH_BIN:-/tmp/tcpd-bench}
bash "$SHARED/build.sh" >/dev/null

OUT=$ROOT/build/bench
mkdir -p "$OUT"
CSV=$OUT/results.csv
LOG=$OUT/bench.log
: >"$LOG"
echo "section,peer,generator,mode,concurrency,workers,delay_ms,rep,requests,errors,rps,p50_us,p99_us,max_us,srv_cpu_s,cpu_us_per_req,srv_hwm_kb,srv_pss_peak_kb,cli_cpu_s,cli_cpu_us_per_req" >"$CSV"

TCPD="$ROOT/build/release/bin/tcpd --bind 127.0.0.1 --port {PORT} --workers {WORKERS} --quiet"
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
want() { [[ -z "$ONLY" || "$ONLY" == "$1" ]]; }

# measure SECTION PEER GEN MODE CONC WORKERS DELAY REP [run.sh args...]
measure() {
  local section=$1 peer=$2 gen=$3 mode=$4 conc=$5 workers=$6 delay=$7 rep=$8
  shift 8
  local line
  if ! line=$(bash "$SHARED/run.sh" "$@" 2>>"$LOG"); then
    echo "bench.sh: run failed: $section $peer $mode c=$conc w=$workers (see $LOG)" >&2
    return 0
  fi
  echo "$line" >>"$LOG"
  local req cpu
  req=$(kv "$line" requests)
  cpu=$(kv "$line" srv_cpu_s)
  local per ccpu cper
  per=$(awk -v c="$cpu" -v r="$req" 'BEGIN{ if (r > 0) printf "%.2f", c * 1e6 / r; else print "" }')
  ccpu=$(kv "$line" cli_cpu_s)
  cper=$(awk -v c="$ccpu" -v r="$req" 'BEGIN{ if (r > 0 && c != "") printf "%.2f", c * 1e6 / r; else print "" }')
  echo "$section,$peer,$gen,$mode,$conc,$workers,$delay,$rep,$req,$(kv "$line" errors),$(kv "$line" rps),$(kv "$line" p50_us),$(kv "$line" p99_us),$(kv "$line" max_us),$cpu,$per,$(kv "$line" srv_hwm_kb),$(kv "$line" srv_pss_peak_kb),$ccpu,$cper" >>"$CSV"
  printf '%-10s %-13s %-9s %-9s c=%-4s w=%-4s rps=%-8s cpu/req=%-7s cli/req=%-7s p99=%s us\n' \
    "$section" "$peer" "$gen" "$mode" "$conc" "$workers" "$(kv "$line" rps)" "$per" "$cper" "$(kv "$line" p99_us)"
}

# One-shot loads spread the client's source addresses: from one address, ports waiting in
# TIME_WAIT held every server to the same ~14,000 connections/s (docs/BENCHMARKS.md).
SPREAD=(--lg "--spread-src 64")
if want oneshot; then
  for rep in $(seq "$REPS"); do  # alternate the servers within each repetition
    measure oneshot inline-c loadgen oneshot 64 - 0 "$rep" "${SPREAD[@]}" inline-c oneshot 64 "$SECS"
    measure oneshot threadpool-c loadgen oneshot 64 8 0 "$rep" "${SPREAD[@]}" \
      threadpool-c oneshot 64 "$SECS" 8
    measure oneshot tcpd loadgen oneshot 64 8 0 "$rep" "${SPREAD[@]}" --cmd "$TCPD" \
      tcpd oneshot 64 "$SECS" 8
  done
fi
if want keepalive; then
  for rep in $(seq "$REPS"); do
    measure keepalive threadpool-c loadgen keepalive 8 8 0 "$rep" threadpool-c keepalive 8 "$SECS" 8
    measure keepalive tcpd loadgen keepalive 8 8 0 "$rep" --cmd "$TCPD" tcpd keepalive 8 "$SECS" 8
  done
fi
if want pool; then
  for w in 1 8 64 256; do
    measure pool tcpd loadgen keepalive "$w" "$w" 20 1 \
      --cmd "$TCPD --delay-ms 20" tcpd keepalive "$w" "$SECS" "$w"
  done
fi
if want fairness; then
  for c in 8 32 64 256; do
    measure fairness tcpd loadgen keepalive "$c" 8 0 1 --cmd "$TCPD" tcpd keepalive "$c" "$SECS" 8
    measure fairness threadpool-c loadgen keepalive "$c" 8 0 1 --lg "--timeout-ms 1000" \
      threadpool-c keepalive "$c" "$SECS" 8
  done
fi
if want memory; then
  # 100,000 one-shot connections; client source addresses spread to dodge TIME_WAIT.
  measure memory tcpd loadgen oneshot 64 8 0 1 --lg "--count 100000 --spread-src 16" \
    --cmd "$TCPD" tcpd oneshot 64 600 8
  measure memory tcpd loadgen oneshot 64 256 0 1 --lg "--count 100000 --spread-src 16" \
    --cmd "$TCPD" tcpd oneshot 64 600 256
fi
if want generator; then
  # tcpc and the reference loadgen in alternating runs on the client core, against the
  # reference threadpool server and against tcpd: rps and client CPU per request.
  for rep in $(seq "$REPS"); do
    for peer in threadpool-c tcpd; do
      for mc in oneshot:64 keepalive:8 keepalive:64; do
        mode=${mc%%:*} c=${mc##*:}
        cmd=(); [[ $mode == oneshot ]] && cmd=("${SPREAD[@]}")
        [[ $peer == tcpd ]] && cmd+=(--cmd "$TCPD")
        measure generator "$peer" loadgen "$mode" "$c" 8 0 "$rep" "${cmd[@]}" "$peer" "$mode" "$c" "$SECS" 8
        LOADGEN="$ROOT/scripts/lib/tcpc-as-loadgen.sh" TCPC="$ROOT/build/release/bin/tcpc" \
          measure generator "$peer" tcpc "$mode" "$c" 8 0 "$rep" "${cmd[@]}" "$peer" "$mode" "$c" "$SECS" 8
      done
    done
  done
fi
if want scale; then
  # 10,000 keep-alive connections sharing --rate 20000 against tcpd (not through run.sh: its
  # loadgen has no rate); tcpc's own peak RSS and the server's view of the connections.
  "$ROOT/scripts/lib/tcpc-scale.sh" "$ROOT/build/release/bin" 10000 20000 "$SECS" | tee -a "$LOG" |
    sed 's/^/scale      /'
fi

# Medians and ratios, then plots.
python3 "$ROOT/scripts/lib/bench_report.py" "$CSV" "$OUT"
echo "bench.sh: wrote $CSV, $OUT/summary.md and plots in $OUT"
