#!/usr/bin/env bash
# How close to its schedule tcpc's open loop sends, at light load.
#
# scripts/bench.sh schedule [LABEL=]TCPC_A [[LABEL=]TCPC_B]
#   One tcpd (build/release, --workers 4); the tcpc builds take turns against it, ROUNDS times:
#   --rate RATE --concurrency CONNS --keepalive for SECONDS_PER_RUN seconds. Per build, the
#   medians of: corrected p50 (from the scheduled send), uncorrected p50 (from the actual send),
#   their difference, tcpc's CPU time, and, when the build reports it, send lateness p50/p99.
#   A schedule that does not lie keeps the corrected p50 within 1.5x + 10 us of the
#   uncorrected one.
#   env: ROUNDS=5, RATE=1000, CONNS=4, SECONDS_PER_RUN=5
set -euo pipefail
here=$(dirname "$0")
root=$(realpath "$here/..")
source "$here/lib/ports.sh"
TCPD=$root/build/release/bin/tcpd
ROUNDS=${ROUNDS:-5} RATE=${RATE:-1000} CONNS=${CONNS:-4} SECS=${SECONDS_PER_RUN:-5}
[[ $# -ge 1 && $1 != -h && $1 != --help ]] || { sed -n '2,12p' "$0"; exit 2; }
[[ -x $TCPD ]] || { echo "bench_schedule.sh: needs $TCPD (cmake --build --preset release)" >&2; exit 2; }

labels=() bins=()
for arg in "$@"; do
  if [[ $arg == *=* ]]; then labels+=("${arg%%=*}"); bins+=("${arg#*=}"); else labels+=("$(basename "$(dirname "$(dirname "$arg")")")"); bins+=("$arg"); fi
  [[ -x ${bins[-1]} ]] || { echo "bench_schedule.sh: ${bins[-1]} is not executable" >&2; exit 2; }
done

OUT=$(mktemp -d) SRV=
cleanup() { [[ -n $SRV ]] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT
port=$(free_port)
"$TCPD" --port "$port" --bind 127.0.0.1 --workers 4 --quiet >/dev/null 2>&1 & SRV=$!
wait_listening "$port" || { echo "bench_schedule.sh: tcpd did not start" >&2; exit 1; }

for round in $(seq "$ROUNDS"); do
  for i in "${!bins[@]}"; do
    "${bins[$i]}" --host 127.0.0.1 --port "$port" --rate "$RATE" --concurrency "$CONNS" --keepalive \
      --duration "$SECS" --json >"$OUT/$i.$round.json"
  done
done

python3 - "$OUT" "$ROUNDS" "$RATE" "$CONNS" "${labels[@]}" <<'PY'
import json, statistics, sys
out, rounds, rate, conns, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
print(f"open loop, {rate}/s on {conns} keep-alive connections, medians of {rounds} rounds (us)")
print("| tcpc | corrected p50 | uncorrected p50 | difference | lateness p50 | lateness p99 | tcpc CPU s | within 1.5x + 10 us |")
print("|---|---|---|---|---|---|---|---|")
for i, label in enumerate(labels):
    runs = [json.load(open(f"{out}/{i}.{r}.json")) for r in range(1, rounds + 1)]
    med = lambda key: statistics.median(j[key] for j in runs) if all(j.get(key) is not None for j in runs) else None
    c, u = med("p50_us"), med("p50_us_uncorrected")
    lp50, lp99 = med("send_lateness_p50_us"), med("send_lateness_p99_us")
    show = lambda v: "-" if v is None else f"{v:g}"
    ok = "yes" if c <= 1.5 * u + 10 else "no"
    cpu = med("client_cpu_s")
    print(f"| {label} | {c:g} | {u:g} | {c - u:g} | {show(lp50)} | {show(lp99)} | {show(cpu)} | {ok} |")
PY
