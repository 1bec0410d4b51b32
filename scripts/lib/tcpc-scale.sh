#!/usr/bin/env bash
# tcpc at scale against tcpd: C keep-alive connections sharing --rate R for S seconds.
# Prints one key=value line: tcpc's figures (ok, failed, achieved rps, p99, its own peak RSS and
# CPU) and what tcpd saw (connections accepted). Usage: tcpc-scale.sh BIN_DIR C R S
set -euo pipefail
BIN=$1 C=$2 R=$3 S=$4
LOG=$(mktemp /tmp/tcpc-scale.XXXXXX.log)
source "$(dirname "$0")/ports.sh"
PORT=$(free_port) || true
[[ -n $PORT ]] || { echo "tcpc-scale: no free port" >&2; exit 1; }
# --queue C: the burst of new, silent connections all fit while the workers park them.
"$BIN/tcpd" --port "$PORT" --workers 8 --queue "$C" --quiet >/dev/null 2>"$LOG" &
SPID=$!
trap 'kill -TERM "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; rm -f "$LOG"' EXIT
wait_listening "$PORT"
json=$("$BIN/tcpc" --host 127.0.0.1 --port "$PORT" --concurrency "$C" --keepalive --rate "$R" \
  --duration "$S" --ramp-up 1 --json --quiet) || true
kill -TERM "$SPID" 2>/dev/null || true
wait "$SPID" 2>/dev/null || true
get() { echo "$json" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
accepted=$(sed -n 's/.* accepted=\([0-9]*\).*/\1/p' "$LOG" | tail -n 1)
echo "connections=$(get concurrency) rate=$R ok=$(get ok) failed=$(get failed) reconnects=$(get reconnects)" \
  "rps=$(get rps) p50_us=$(get p50_us) p99_us=$(get p99_us)" \
  "cli_max_rss_kib=$(get client_max_rss_kib) cli_cpu_s=$(get client_cpu_s) srv_accepted=$accepted"
