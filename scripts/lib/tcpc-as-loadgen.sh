#!/usr/bin/env bash
# Lets shared/bench/run.sh drive tcpc instead of its reference loadgen: takes loadgen's flags,
# runs `tcpc` in load mode, prints loadgen's key=value line. TCPC selects the binary.
set -euo pipefail
TCPC=${TCPC:-build/release/bin/tcpc}
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --mode) [[ "$2" == keepalive ]] && args+=(--keepalive); shift 2 ;;
    --spread-src) shift 2 ;;  # tcpc spreads loopback sources itself when it needs to
    *) args+=("$1"); shift ;;
  esac
done
json=$("$TCPC" "${args[@]}" --json --quiet) || true
get() { echo "$json" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
[[ -n "$json" ]] || exit 1
echo "mode=tcpc requests=$(get ok) errors=$(get failed) secs=$(get seconds) rps=$(get rps) p50_us=$(get p50_us) p90_us=$(get p90_us) p99_us=$(get p99_us) max_us=$(get max_us) cli_cpu_s=$(get client_cpu_s) cli_rss_kb=$(get client_max_rss_kib)"
