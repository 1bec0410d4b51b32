#!/usr/bin/env bash
# Named attacks on a real tcpd, each bounded in time, each checking that a good client is still
# answered promptly, that the summary's outcomes add up to `accepted` with none left active, and
# that the server's descriptors return to their baseline:
#   half-close   100 clients closing right after their last request (served at once)
#   drain        SIGTERM with every kind of session open (ends by the deadline + 1 s grace)
#   stream       one client pipelining requests faster than they are answered
#   non-readers  8 clients that never read their replies, on 8 workers
#   tricklers    8 clients sending a byte every 4 ms without a newline, on 8 workers
#   mass-close   N clients holding 65,535 bytes each, then all closing at once
#   scrapers     20 silent connections to --metrics, then real scrapes
# Usage: scripts/attack.sh [--clients N] [--bin DIR] [SCENARIO...]   (default: all; N=2000)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-build/release/bin}
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --clients) args+=(--clients "$2"); shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ ! -x "$BIN/tcpd" ]]; then
  cmake --preset release >/dev/null && cmake --build --preset release --target tcpd
fi
exec timeout 600 python3 scripts/lib/attack.py --tcpd "$BIN/tcpd" "${args[@]}"
