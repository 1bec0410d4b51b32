#!/usr/bin/env bash
# Slow-loris and silent-burst figures, single runs:
#   loris: 4 x W clients trickle a request (a full line first, then a byte every 100-500 ms)
#          while tcpc measures a good client's latency at --rate 200 (one-shot, 10 s);
#   burst: 10,000 keep-alive connections opened within 0.8 s that send (almost) nothing,
#          against the default --queue: how many got ERR busy.
# Usage: scripts/bench.sh loris [TCPD_BINARY...]   (default: build/release/bin/tcpd)
set -euo pipefail
cd "$(dirname "$0")/.."
TCPC=build/release/bin/tcpc
[[ $# -gt 0 ]] || set -- build/release/bin/tcpd
W=8
source scripts/lib/ports.sh
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

tricklers() {  # PORT N SECONDS: N clients, each a full line then a byte every 100-500 ms
  python3 - "$@" <<'PY'
import random, socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"hello\n")
    socks.append([s, time.monotonic() + random.uniform(0.1, 0.5)])
end = time.monotonic() + secs
while time.monotonic() < end and socks:
    now = time.monotonic()
    for entry in list(socks):
        if entry[1] <= now:
            try:
                entry[0].sendall(b"a")
                entry[1] = now + random.uniform(0.1, 0.5)
            except OSError:
                socks.remove(entry)   # cut by the server
    time.sleep(0.01)
PY
}

get() { echo "$1" | sed -n "s/.*\"$2\":\([0-9.a-z]*\).*/\1/p"; }
for bin in "$@"; do
  port=$(free_port)
  log=$(mktemp /tmp/loris.XXXXXX.log)
  "$bin" --port "$port" --bind 127.0.0.1 --workers "$W" --io-timeout-ms 5000 --quiet >/dev/null 2>"$log" &
  srv=$!; PIDS+=("$srv")
  wait_listening "$port"
  tricklers "$port" $((4 * W)) 12 &
  PIDS+=("$!")
  sleep 1
  json=$("$TCPC" --host 127.0.0.1 --port "$port" --rate 200 --duration 10 --concurrency 64 --json --quiet || true)
  kill -TERM "$srv"; wait "$srv" 2>/dev/null || true
  echo "loris $bin: good client ok=$(get "$json" ok) failed=$(get "$json" failed) p50_us=$(get "$json" p50_us) p99_us=$(get "$json" p99_us) max_us=$(get "$json" max_us); tcpd $(grep -o ' io_timeout=[0-9]*' "$log" | tail -n 1)"
  rm -f "$log"

  port=$(free_port)
  log=$(mktemp /tmp/burst.XXXXXX.log)
  "$bin" --port "$port" --bind 127.0.0.1 --workers "$W" --quiet >/dev/null 2>"$log" &
  srv=$!; PIDS+=("$srv")
  wait_listening "$port"
  "$TCPC" --host 127.0.0.1 --port "$port" --concurrency 10000 --keepalive --rate 1 --duration 2 \
    --ramp-up 0.8 --json --quiet >/dev/null 2>&1 || true
  kill -TERM "$srv"; wait "$srv" 2>/dev/null || true
  echo "burst $bin: tcpd$(grep -o ' accepted=[0-9]*' "$log" | tail -n 1)$(grep -o ' busy=[0-9]*' "$log" | tail -n 1)"
  rm -f "$log"
done
