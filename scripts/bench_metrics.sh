#!/usr/bin/env bash
# What metrics cost: keep-alive C = W = 8 against tcpd with --metrics off, and on with a scrape
# every 100 ms, alternating runs; prints each run and the medians of rps and server CPU per
# request. Needs ../shared/bench beside the project (its run.sh pins the server to CPU 0 and the
# load generator to CPU 1; the scraper runs on CPU 1 too).
# Usage: scripts/bench.sh metrics [REPS=5] [SECONDS=5]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REPS=${1:-5} SECS=${2:-5}
SHARED=${SHARED:-$ROOT/../shared/bench}
export BENCH_BIN=${BENCH_BIN:-/tmp/tcpd-bench}
[[ -x "$BENCH_BIN/loadgen" ]] || (cd "$SHARED" && ./build.sh >/dev/null)
[[ -x build/release/bin/tcpd ]] || { cmake --preset release >/dev/null && cmake --build --preset release --target tcpd; }
TCPD=$ROOT/build/release/bin/tcpd

source scripts/lib/ports.sh

scraper=""
stop_scraper() { [[ -n "$scraper" ]] && kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; scraper=""; }
trap stop_scraper EXIT

out=$(mktemp)
for rep in $(seq "$REPS"); do
  for variant in off on; do
    if [[ $variant == on ]]; then
      mport=$(free_port)
      cmd="$TCPD --port {PORT} --workers {WORKERS} --quiet --metrics 127.0.0.1:$mport"
      # Scrape every 100 ms for the whole run: one python process on the client CPU (a curl per
      # scrape would cost the load generator a fork+exec ten times a second). Failures before
      # the server is up are expected.
      taskset -c 1 python3 -c '
import socket, sys, time
while True:
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        while s.recv(65536):
            pass
        s.close()
    except OSError:
        pass
    time.sleep(0.1)' "$mport" &
      scraper=$!
    else
      cmd="$TCPD --port {PORT} --workers {WORKERS} --quiet"
    fi
    line=$("$SHARED/run.sh" --cmd "$cmd" "tcpd-metrics-$variant" keepalive 8 "$SECS" 8)
    stop_scraper
    echo "$variant $line" | tee -a "$out"
  done
done

python3 - "$out" <<'PY'
import sys, statistics
rows = {"off": [], "on": []}
for line in open(sys.argv[1]):
    variant, *kv = line.split()
    d = dict(x.split("=", 1) for x in kv if "=" in x)
    req = float(d.get("requests", d.get("ok", 0)) or 0)
    rows[variant].append((float(d["rps"]), float(d["srv_cpu_s"]) * 1e6 / req if req else float("nan")))
med = {v: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for v, rs in rows.items()}
print()
print("| metrics | runs | rps (median) | server CPU µs/request (median) |")
print("|---|---|---|---|")
for v in ("off", "on"):
    print(f"| {v} | {len(rows[v])} | {med[v][0]:.0f} | {med[v][1]:.2f} |")
print(f"\non/off: rps {med['on'][0] / med['off'][0]:.3f}x, CPU per request {med['on'][1] / med['off'][1]:.3f}x")
PY
