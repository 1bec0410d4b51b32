#!/usr/bin/env bash
# UDP benchmarks. Needs root (cgroups), build/release's tcpd and tcpc, shared/bench's
# udp_reflector (BENCH_BIN, default /tmp/tcpd-bench) and Debian's sockperf.
#
# scripts/bench.sh udp paired LABEL=COMMAND LABEL=COMMAND
#   Two UDP echo servers at once, both on CPU 0, each in its own cgroup capped at SHARE percent
#   of a core, each driven by its own tcpc --udp (closed loop, C sockets, one thread, both on
#   CPU 1): datagrams/s at the same CPU budget, as bench_paired.sh does for TCP. A COMMAND is a
#   server's command line with {PORT} where its port goes; "reflector1" and "reflector32" name
#   udp_reflector --batch 1 / 32, and "tcpd" names build/release's tcpd --udp --mode echo
#   --workers 2 --bind 127.0.0.1 --quiet (EXTRA= adds flags to it).
#   env: ROUNDS=6, SHARE=20, SECONDS_PER_RUN=4, CONC="64" (comma-separated: one load each)
# scripts/bench.sh udp generator
#   tcpc's UDP generator against sockperf's: open-loop send rate into udp_reflector --batch 32
#   against `sockperf throughput -m 64`, and closed-loop round trip at one socket against
#   udp_reflector --batch 1 beside `sockperf ping-pong --full-rtt` against `sockperf server`
#   (server on CPU 0, client on CPU 1; REPS=3 runs each, medians).
# scripts/bench.sh udp allcores
#   tcpd --udp --mode echo with both cores (no cap) driven by tcpc, beside the sockperf pair's
#   own throughput on this machine (REPS=3).
# scripts/bench.sh udp memory
#   tcpd's RSS before and after 10 million datagrams (and with --udp-source-rate on, after
#   125,000 distinct source addresses).
set -euo pipefail
here=$(dirname "$0")
root=$(realpath "$here/..")
source "$here/lib/ports.sh"
source "$here/lib/cgroups.sh"
TCPD=$root/build/release/bin/tcpd
TCPC=$root/build/release/bin/tcpc
PEERS=${BENCH_BIN:-/tmp/tcpd-bench}
REFLECTOR=$PEERS/udp_reflector
usage() { sed -n '2,25p' "$0"; }
[[ $# -ge 1 ]] || { usage; exit 2; }
for t in "$TCPD" "$TCPC" "$REFLECTOR"; do
  [[ -x $t ]] || { echo "bench_udp.sh: needs $t (cmake --build --preset release; bash shared/bench/build.sh)" >&2; exit 2; }
done

PIDS=() CG=() OUT=$(mktemp -d)
trap bench_cleanup EXIT

# free_udp_port: a port free for both TCP and UDP (tcpd --udp takes both).
free_udp_port() {
  local p
  for _ in $(seq 50); do
    p=$(free_port)
    ss -Huln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
  done
  return 1
}
wait_udp() {
  for _ in $(seq 100); do ss -Huln "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  return 1
}
# server_cmd SPEC: the command line of a server spec, {PORT} still in it.
server_cmd() {
  case $1 in
    reflector1) echo "$REFLECTOR --bind 127.0.0.1 --batch 1 --port {PORT}" ;;
    reflector32) echo "$REFLECTOR --bind 127.0.0.1 --batch 32 --port {PORT}" ;;
    tcpd) echo "$TCPD --udp --mode echo --workers 2 --bind 127.0.0.1 --quiet ${EXTRA:-} --port {PORT}" ;;
    *) echo "$1" ;;
  esac
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
json_fields() {
  python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(f"{k}={d[k]}" for k in sys.argv[2:]))' "$@"
}

paired() {
  [[ $# -eq 2 && $1 == *=* && $2 == *=* ]] || { usage; exit 2; }
  local ROUNDS=${ROUNDS:-6} SECS=${SECONDS_PER_RUN:-4} SHARE=${SHARE:-20}
  local la=${1%%=*} lb=${2%%=*} ca cb
  ca=$(server_cmd "${1#*=}") cb=$(server_cmd "${2#*=}")
  capped_cgroups tcpd-udp "$SHARE" || exit 2
  IFS=, read -r -a loads <<<"${CONC:-64}"
  for round in $(seq "$ROUNDS"); do
    for conc in "${loads[@]}"; do
      local pa pb
      pa=$(free_udp_port) pb=$(free_udp_port)
      while [[ $pb == "$pa" ]]; do pb=$(free_udp_port); done
      local ga=${CG[$((round % 2))]} gb=${CG[$(((round + 1) % 2))]}
      PIDS=()
      # shellcheck disable=SC2086
      (echo "$BASHPID" >"$ga/cgroup.procs" && exec taskset -c 0 ${ca//\{PORT\}/$pa} >/dev/null 2>&1) &
      PIDS+=($!)
      # shellcheck disable=SC2086
      (echo "$BASHPID" >"$gb/cgroup.procs" && exec taskset -c 0 ${cb//\{PORT\}/$pb} >/dev/null 2>&1) &
      PIDS+=($!)
      wait_udp "$pa" && wait_udp "$pb" || { echo "bench_udp.sh: a server did not bind" >&2; exit 1; }
      local sa=${PIDS[0]} sb=${PIDS[1]} t0a t0b t1a t1b c1 c2
      t0a=$(ticks "$sa") t0b=$(ticks "$sb")
      taskset -c 1 "$TCPC" --udp --host 127.0.0.1 --port "$pa" --concurrency "$conc" --threads 1 \
        --duration "$SECS" --timeout-ms 200 --json --quiet >"$OUT/a.json" 2>/dev/null & c1=$!
      taskset -c 1 "$TCPC" --udp --host 127.0.0.1 --port "$pb" --concurrency "$conc" --threads 1 \
        --duration "$SECS" --timeout-ms 200 --json --quiet >"$OUT/b.json" 2>/dev/null & c2=$!
      wait "$c1" "$c2" || true
      t1a=$(ticks "$sa") t1b=$(ticks "$sb")
      kill -TERM "$sa" "$sb" 2>/dev/null || true
      wait "$sa" "$sb" 2>/dev/null || true
      PIDS=()
      echo "round=$round conc=$conc side=A ticks=$((t1a - t0a)) $(json_fields "$OUT/a.json" received lost received_per_s client_cpu_s seconds)" | tee -a "$OUT/runs" >&2
      echo "round=$round conc=$conc side=B ticks=$((t1b - t0b)) $(json_fields "$OUT/b.json" received lost received_per_s client_cpu_s seconds)" | tee -a "$OUT/runs" >&2
    done
  done
  python3 - "$OUT/runs" "$la" "$lb" "$SHARE" "$(getconf CLK_TCK)" <<'PY'
import collections, re, statistics, sys
runs, la, lb, share, hz = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
rows = collections.defaultdict(dict)
for line in open(runs):
    kv = dict(re.findall(r'(\w+)=(\S+)', line))
    rec = int(kv['received'])
    cpu = int(kv['ticks']) / hz * 1e6 / max(rec, 1)
    rows[(int(kv['conc']), int(kv['round']))][kv['side']] = (
        float(kv['received_per_s']), cpu, int(kv['lost']), float(kv['client_cpu_s']) / float(kv['seconds']))
by = collections.defaultdict(list)
for (conc, _), sides in sorted(rows.items()):
    by[conc].append(sides)
print(f"UDP echo servers capped at {share}% of CPU 0 each, run together; A = {la}, B = {lb}.")
print("| load | A datagrams/s | B datagrams/s | A/B each round | median | A / B server CPU µs/datagram | clients' core busy | lost |")
print("|---|---|---|---|---|---|---|---|")
for conc, rs in by.items():
    ratios = [r['A'][0] / r['B'][0] for r in rs]
    med = lambda s, i: statistics.median(r[s][i] for r in rs)
    print(f"| closed loop C={conc} | {med('A', 0):.0f} | {med('B', 0):.0f} | "
          f"{' '.join(f'{x:.3f}' for x in ratios)} | {statistics.median(ratios):.3f} | "
          f"{med('A', 1):.2f} / {med('B', 1):.2f} | "
          f"{statistics.median(r['A'][3] + r['B'][3] for r in rs):.2f} | "
          f"{sum(r[s][2] for r in rs for s in 'AB')} |")
PY
}

median() { python3 -c 'import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

generator() {
  local reps=${REPS:-3} p sent=() sp=() rtt=() sprtt=() pid
  for _ in $(seq "$reps"); do
    p=$(free_udp_port)
    taskset -c 0 "$REFLECTOR" --bind 127.0.0.1 --batch 32 --port "$p" >/dev/null & pid=$!
    PIDS=("$pid")
    wait_udp "$p" || { echo "bench_udp.sh: the server did not bind" >&2; exit 1; }
    taskset -c 1 "$TCPC" --udp --host 127.0.0.1 --port "$p" --rate 5000000 --concurrency 8 \
      --threads 1 --duration 3 --timeout-ms 200 --json --quiet >"$OUT/g.json" 2>/dev/null || true
    sent+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent_per_s"])' "$OUT/g.json")")
    sp+=("$(taskset -c 1 sockperf throughput -i 127.0.0.1 -p "$p" -m 64 -t 3 2>&1 |
      sed -n 's/.*Summary: Message Rate is \([0-9]*\) \[msg\/sec\].*/\1/p')")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    taskset -c 0 "$REFLECTOR" --bind 127.0.0.1 --batch 1 --port "$p" >/dev/null & pid=$!
    PIDS=("$pid")
    wait_udp "$p" || { echo "bench_udp.sh: the server did not bind" >&2; exit 1; }
    taskset -c 1 "$TCPC" --udp --host 127.0.0.1 --port "$p" --concurrency 1 --threads 1 \
      --duration 3 --json --quiet >"$OUT/r.json" 2>/dev/null || true
    rtt+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p50_us"])' "$OUT/r.json")")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    taskset -c 0 sockperf server -i 127.0.0.1 -p "$p" >/dev/null 2>&1 & pid=$!
    PIDS=("$pid")
    wait_udp "$p" || { echo "bench_udp.sh: the server did not bind" >&2; exit 1; }
    sprtt+=("$(taskset -c 1 sockperf ping-pong -i 127.0.0.1 -p "$p" -m 64 -t 3 --full-rtt 2>&1 |
      sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p')")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    PIDS=()
  done
  echo "runs: tcpc sent/s ${sent[*]}; sockperf throughput msg/s ${sp[*]}; tcpc p50 us ${rtt[*]}; sockperf p50 RTT us ${sprtt[*]}" >&2
  local a b c d
  a=$(median "${sent[@]}") b=$(median "${sp[@]}") c=$(median "${rtt[@]}") d=$(median "${sprtt[@]}")
  echo "| measure | tcpc --udp | sockperf | tcpc / sockperf |"
  echo "|---|---|---|---|"
  python3 -c 'import sys; a,b,c,d=map(float,sys.argv[1:]); print(f"| open-loop send rate, 64 B, into udp_reflector --batch 32 (msg/s) | {a:.0f} | {b:.0f} | {a/b:.2f} |"); print(f"| closed-loop round trip p50, one socket (us) | {c:.1f} | {d:.1f} | {c/d:.2f} |")' "$a" "$b" "$c" "$d"
}

allcores() {
  local reps=${REPS:-3} p pid t=() s=()
  for _ in $(seq "$reps"); do
    p=$(free_udp_port)
    "$TCPD" --udp --mode echo --workers 2 --bind 127.0.0.1 --quiet --port "$p" >/dev/null 2>&1 & pid=$!
    PIDS=("$pid")
    wait_udp "$p" || { echo "bench_udp.sh: the server did not bind" >&2; exit 1; }
    "$TCPC" --udp --host 127.0.0.1 --port "$p" --concurrency 64 --threads 2 --duration 3 \
      --timeout-ms 200 --json --quiet >"$OUT/a.json" 2>/dev/null || true
    t+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["received_per_s"])' "$OUT/a.json")")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    sockperf server -i 127.0.0.1 -p "$p" >/dev/null 2>&1 & pid=$!
    PIDS=("$pid")
    wait_udp "$p" || { echo "bench_udp.sh: the server did not bind" >&2; exit 1; }
    s+=("$(sockperf throughput -i 127.0.0.1 -p "$p" -m 64 -t 3 2>&1 |
      sed -n 's/.*Summary: Message Rate is \([0-9]*\) \[msg\/sec\].*/\1/p')")
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    PIDS=()
  done
  echo "runs: tcpd echoed/s ${t[*]}; sockperf throughput msg/s ${s[*]}" >&2
  python3 -c 'import statistics as st, sys; n=int(sys.argv[1]); t=list(map(float,sys.argv[2:2+n])); s=list(map(float,sys.argv[2+n:])); print(f"| both cores, 64 B | tcpd --udp echo, tcpc C=64 2 threads: {st.median(t):.0f} datagrams/s answered | sockperf throughput into sockperf server: {st.median(s):.0f} msg/s sent (not answered) |")' "${#t[@]}" "${t[@]}" "${s[@]}"
}

memory() {
  local p pid
  p=$(free_udp_port)
  "$TCPD" --udp --mode echo --workers 2 --bind 127.0.0.1 --quiet --udp-source-rate 100000000 --port "$p" >/dev/null 2>&1 & pid=$!
  PIDS=("$pid")
  wait_udp "$p" || { echo "bench_udp.sh: the server did not bind" >&2; exit 1; }
  local rss0 rss1 rss2
  "$TCPC" --udp --host 127.0.0.1 --port "$p" --concurrency 64 --threads 2 --count 100000 --quiet >/dev/null 2>&1 || true
  rss0=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  "$TCPC" --udp --host 127.0.0.1 --port "$p" --concurrency 64 --threads 2 --count 10000000 --quiet >/dev/null 2>&1 || true
  rss1=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  # 125,000 source addresses, one datagram each: more than the table's 65,536.
  python3 - "$p" <<'PY'
import socket, sys
port = int(sys.argv[1])
for b in (1, 2):
    for r in range(250):
        for a in range(1, 251):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((f"127.{b}.{r}.{a}", 0))
                s.sendto(b"x", ("127.0.0.1", port))
PY
  rss2=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  echo "| tcpd --udp RSS | after 100k datagrams: ${rss0} KiB | after 10M more: ${rss1} KiB | after 125,000 source addresses: ${rss2} KiB |"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  PIDS=()
}

cmd=$1
shift
case $cmd in
  paired) paired "$@" ;;
  generator) generator ;;
  allcores) allcores ;;
  memory) memory ;;
  *) usage; exit 2 ;;
esac
