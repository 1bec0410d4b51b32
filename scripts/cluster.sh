#!/usr/bin/env bash
# K tcpd "hosts" behind HAProxy, each host in its own network namespace joined to HAProxy's over
# a veth pair and a bridge (addresses 10.77.0.11.. inside those namespaces only), so traffic
# crosses real (virtual) links. Without root / CAP_NET_ADMIN it falls back to loopback
# addresses 127.0.0.2..K+1 and says so.
#
# Usage: scripts/cluster.sh up K [--workers W] [--queue Q] [--delay-ms D] [--netem MS] [--quiet]
#          (hosts run --proxy-protocol behind HAProxy's send-proxy-v2 and log each connection
#          with the real client's address; --quiet turns that log off)
#        scripts/cluster.sh status | kill N | drain N | restart N | down
#        scripts/cluster.sh bench            (K = 1, 2, 4; writes build/cluster-bench.md)
#        scripts/cluster.sh bench --generators G [--hosts K]
#          (G tcpc processes, each in its own namespace "host" on the bridge, started together
#          against K hosts (default 2) through HAProxy, merged with `tcpc merge`; writes
#          build/cluster-bench-generators.md)
#        scripts/cluster.sh load SECONDS C [oneshot|keepalive]   (tcpc through HAProxy, JSON)
# State (pids, logs, the written haproxy.cfg) lives in $CLUSTER_STATE (default build/cluster).
# CLUSTER_NETNS=0 forces the loopback fallback.
# Everything it creates carries the prefix "tcpdc-"; `down` (and a failed `up`, or Ctrl-C during
# it) removes exactly that, and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${CLUSTER_STATE:-$ROOT/build/cluster}
BIN=${CLUSTER_BIN:-$ROOT/build/release/bin}
TEMPLATE=$ROOT/scripts/cluster/haproxy.cfg.in
NS_LB=tcpdc-lb
HOST_PORT=12345
LB_PORT=${CLUSTER_PORT:-23456}
INTER_MS=${CLUSTER_INTER_MS:-300}
FALL=2 RISE=2

die() { echo "cluster: $*" >&2; exit 1; }
say() { echo "cluster: $*" >&2; }

mode() { cat "$STATE/mode" 2>/dev/null || echo none; }
host_ns() { echo "tcpdc-h$1"; }
host_addr() { if [[ $(mode) == netns ]]; then echo "10.77.0.$((10 + $1))"; else echo "127.0.0.$((1 + $1))"; fi; }
host_port() { if [[ $(mode) == netns ]]; then echo $HOST_PORT; else echo $((22345)); fi; }
# nsenter, not `ip netns exec`: ip forks and waits, so $! would be ip's PID and a signal meant
# for tcpd would stop ip and leave tcpd running. nsenter execs, so $! is the program's PID.
in_ns() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" -- "$@"
}
lb_exec() { if [[ $(mode) == netns ]]; then in_ns "$NS_LB" "$@"; else "$@"; fi; }
host_exec() {
  local n=$1
  shift
  if [[ $(mode) == netns ]]; then in_ns "$(host_ns "$n")" "$@"; else "$@"; fi
}

can_netns() {
  [[ "${CLUSTER_NETNS:-1}" != 0 ]] || return 1  # CLUSTER_NETNS=0 forces the loopback fallback
  [[ $(id -u) -eq 0 ]] || return 1
  ip netns add tcpdc-probe 2>/dev/null || return 1
  ip netns del tcpdc-probe
}

# --- namespaces -------------------------------------------------------------------------------
net_up() {
  local k=$1 netem=$2
  ip netns add "$NS_LB"
  echo "$NS_LB" >>"$STATE/created"
  ip -n "$NS_LB" link set lo up
  ip -n "$NS_LB" link add tcpdc-br type bridge
  ip -n "$NS_LB" addr add 10.77.0.1/24 dev tcpdc-br
  ip -n "$NS_LB" link set tcpdc-br up
  for n in $(seq "$k"); do
    local ns
    ns=$(host_ns "$n")
    ip netns add "$ns"
    echo "$ns" >>"$STATE/created"
    ip -n "$ns" link set lo up
    # The pair is made inside HAProxy's namespace and one end moved to the host's: nothing
    # appears in the root namespace.
    ip -n "$NS_LB" link add "tcpdc-v$n" type veth peer name eth0 netns "$ns"
    ip -n "$NS_LB" link set "tcpdc-v$n" master tcpdc-br up
    ip -n "$ns" addr add "$(host_addr "$n")/24" dev eth0
    ip -n "$ns" link set eth0 up
    if [[ "$netem" != 0 ]]; then
      ip -n "$ns" link set eth0 up
      in_ns "$ns" tc qdisc add dev eth0 root netem delay "${netem}ms" 2>/dev/null ||
        say "h$n: tc netem is not available in this kernel (sch_netem); no delay added"
    fi
  done
}

# Generator "hosts": namespaces tcpdc-g1..G on the bridge, 10.77.0.201.. (made like the hosts').
gen_up() {
  local g=$1
  [[ $(mode) == netns ]] || return 0
  for n in $(seq "$g"); do
    local ns=tcpdc-g$n
    ip netns add "$ns"
    echo "$ns" >>"$STATE/created"
    ip -n "$ns" link set lo up
    ip -n "$NS_LB" link add "tcpdc-gv$n" type veth peer name eth0 netns "$ns"
    ip -n "$NS_LB" link set "tcpdc-gv$n" master tcpdc-br up
    ip -n "$ns" addr add "10.77.0.$((200 + n))/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
}
# Runs a command as generator N: in its namespace, or on loopback in this one.
gen_exec() {
  local n=$1
  shift
  if [[ $(mode) == netns ]]; then in_ns "tcpdc-g$n" "$@"; else "$@"; fi
}

net_down() {
  [[ -f "$STATE/created" ]] || return 0
  while read -r ns; do
    [[ "$ns" == tcpdc-* ]] && ip netns del "$ns" 2>/dev/null || true
  done <"$STATE/created"
  rm -f "$STATE/created"
}

# --- processes --------------------------------------------------------------------------------
# Running, and not a zombie: a process whose parent has gone is reaped by PID 1, which here may
# take a second or two; an exited process must not count as running meanwhile.
pid_alive() {
  [[ -f "$1" ]] || return 1
  local stat
  stat=$(cat "/proc/$(cat "$1")/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ -n "$stat" && ${stat:0:1} != Z ]]
}

start_host() {
  local n=$1
  local args
  : >"$STATE/h$n.out"
  args=$(cat "$STATE/tcpd_args")
  local pre=()
  [[ $(mode) == netns ]] && pre=(nsenter --net="/run/netns/$(host_ns "$n")" --)
  # Started directly (not through a shell function), so that $! is tcpd's own PID.
  # shellcheck disable=SC2086
  "${pre[@]}" "$BIN/tcpd" --bind "$(host_addr "$n")" --port "$(host_port)" --name "h$n" \
    $args >"$STATE/h$n.out" 2>>"$STATE/h$n.log" </dev/null &
  echo $! >"$STATE/h$n.pid"
  for _ in $(seq 200); do
    grep -q "listening on" "$STATE/h$n.out" 2>/dev/null && return 0
    pid_alive "$STATE/h$n.pid" || break
    sleep 0.05
  done
  die "host $n did not start: $(tail -n 3 "$STATE/h$n.log")"
}

write_haproxy_cfg() {
  local k=$1 maxconn=$2 bind="127.0.0.1:$LB_PORT"
  # In namespaces the bridge address too, for generators in their own namespaces.
  [[ $(mode) == netns ]] && bind="127.0.0.1:$LB_PORT,10.77.0.1:$LB_PORT"
  sed -e "s|@STATE@|$STATE|g" -e "s|@LB_BIND@|$bind|" -e "s|@INTER_MS@|$INTER_MS|" \
    -e "s|@FALL@|$FALL|" -e "s|@RISE@|$RISE|" -e "s|@MAXCONN@|$maxconn|" "$TEMPLATE" \
    >"$STATE/haproxy.cfg"
  for n in $(seq "$k"); do
    echo "    server h$n $(host_addr "$n"):$(host_port) check" >>"$STATE/haproxy.cfg"
  done
}

start_haproxy() {
  local pre=()
  [[ $(mode) == netns ]] && pre=(nsenter --net="/run/netns/$NS_LB" --)
  "${pre[@]}" haproxy -f "$STATE/haproxy.cfg" -db >"$STATE/haproxy.log" 2>&1 </dev/null &
  echo $! >"$STATE/haproxy.pid"
  for _ in $(seq 100); do
    [[ -S "$STATE/haproxy.sock" ]] && return 0
    pid_alive "$STATE/haproxy.pid" || break
    sleep 0.05
  done
  die "haproxy did not start: $(tail -n 5 "$STATE/haproxy.log")"
}

# "name status scur stot econ eresp wretr wredis chkdown" per server, from HAProxy's CSV.
stats() {
  echo "show stat" | socat stdio "UNIX-CONNECT:$STATE/haproxy.sock" | awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) { h = $i; sub(/^# /, "", h); col[h] = i }; next }
    $1 == "tcpd_hosts" && $2 != "BACKEND" {
      print $2, $col["status"], $col["scur"], $col["stot"], $col["econ"], $col["eresp"],
            $col["wretr"], $col["wredis"], $col["chkdown"]
    }'
}

# Waits until host N has HAProxy status $2 (UP/DOWN); prints the milliseconds it took.
wait_status() {
  local n=$1 want=$2 limit_ms=${3:-10000} t0
  t0=$(date +%s%N)
  while :; do
    if stats | awk -v h="h$n" -v w="$want" '$1 == h && $2 ~ "^" w { found = 1 } END { exit !found }'; then
      echo $((($(date +%s%N) - t0) / 1000000))
      return 0
    fi
    (($(date +%s%N) - t0 > limit_ms * 1000000)) && return 1
    sleep 0.05
  done
}

cmd_up() {
  local k=${1:?usage: up K} workers=8 queue=256 delay=0 netem=0 log=
  shift
  while [[ $# -gt 0 ]]; do
    case $1 in
      --workers) workers=$2; shift 2 ;;
      --queue) queue=$2; shift 2 ;;
      --delay-ms) delay=$2; shift 2 ;;
      --netem) netem=$2; shift 2 ;;
      --quiet) log=--quiet; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  [[ -f "$STATE/mode" ]] && die "a cluster is up already (scripts/cluster.sh down)"
  command -v haproxy >/dev/null || die "haproxy is not installed (scripts/deps.sh)"
  [[ -x "$BIN/tcpd" ]] || die "no $BIN/tcpd (cmake --build --preset release)"
  mkdir -p "$STATE"
  # Ctrl-C or a failure half-way: take down what was made. A caller's traps (bench) come back
  # once it is up.
  local saved_traps
  saved_traps=$(trap -p EXIT INT TERM)
  trap 'say "up failed; cleaning up"; cmd_down >/dev/null 2>&1' EXIT
  trap 'exit 130' INT TERM
  if can_netns; then
    echo netns >"$STATE/mode"
    net_up "$k" "$netem"
  else
    echo loopback >"$STATE/mode"
    say "no network namespaces here (needs root / CAP_NET_ADMIN): hosts on 127.0.0.2..$((k + 1))"
    [[ "$netem" != 0 ]] && say "--netem needs namespaces; ignored"
  fi
  echo "$k" >"$STATE/k"
  rm -f "$STATE"/h[0-9]*.log  # a host's log lasts across its restarts, not across clusters
  # The hosts take PROXY headers from the balancer alone: its bridge address in the namespaces,
  # 127.0.0.1 on loopback.
  local lb=127.0.0.1
  [[ $(mode) == netns ]] && lb=10.77.0.1
  echo "--workers $workers --queue $queue --delay-ms $delay $log --drain-timeout-ms 5000" \
    "--proxy-protocol --proxy-from $lb" >"$STATE/tcpd_args"
  for n in $(seq "$k"); do start_host "$n"; done
  # A host's descriptor limit, less room for its listener, spare and logs (see haproxy.cfg.in).
  write_haproxy_cfg "$k" $(($(ulimit -n) - 64))
  start_haproxy
  for n in $(seq "$k"); do wait_status "$n" UP 10000 >/dev/null || die "h$n never came UP"; done
  trap - EXIT INT TERM
  eval "$saved_traps"
  say "up: $k hosts ($(mode)), HAProxy on 127.0.0.1:$LB_PORT$([[ $(mode) == netns ]] && echo " in namespace $NS_LB")"
}

cmd_down() {
  for f in "$STATE"/h[0-9]*.pid "$STATE"/haproxy.pid; do
    [[ -f "$f" ]] || continue
    kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$STATE"/h[0-9]*.pid "$STATE"/haproxy.pid; do
    [[ -f "$f" ]] || continue
    for _ in $(seq 100); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  net_down
  rm -f "$STATE/mode" "$STATE/k" "$STATE/haproxy.sock"
  say "down"
}

cmd_status() {
  [[ -f "$STATE/mode" ]] || die "no cluster (scripts/cluster.sh up K)"
  echo "mode $(mode), $(cat "$STATE/k") hosts, HAProxy on 127.0.0.1:$LB_PORT"
  for f in "$STATE"/h[0-9]*.pid; do
    local n=${f##*/h}
    n=${n%.pid}
    # The last client the host logged, health checks (from the balancer itself) aside.
    local last lb
    lb=$(sed -n 's/.*--proxy-from \([^ ]*\).*/\1/p' "$STATE/tcpd_args")
    last=$(grep -o '[^ ]* closed: [a-z_]*' "$STATE/h$n.log" 2>/dev/null | grep -v "^$lb:" |
      tail -n 1 || true)
    echo "h$n pid $(cat "$f") $(pid_alive "$f" && echo running || echo stopped) $(host_addr "$n"):$(host_port)" \
      "last client: ${last:-none yet}"
  done
  echo "name status scur stot econ eresp wretr wredis chkdown"
  stats
}

cmd_kill() { kill -KILL "$(cat "$STATE/h${1:?N}.pid")"; say "h$1 killed (SIGKILL)"; }

cmd_drain() {
  local f="$STATE/h${1:?N}.pid" t0
  t0=$(date +%s%N)
  kill -TERM "$(cat "$f")"
  for _ in $(seq 300); do pid_alive "$f" || break; sleep 0.05; done
  pid_alive "$f" && die "h$1 still running 15 s after SIGTERM"
  say "h$1 drained and exited in $((($(date +%s%N) - t0) / 1000000)) ms"
}

cmd_restart() {
  local n=${1:?N}
  pid_alive "$STATE/h$n.pid" && cmd_drain "$n"
  start_host "$n"
  local ms
  ms=$(wait_status "$n" UP 10000) || die "h$n did not come back UP"
  say "h$n back, UP in HAProxy after $ms ms"
}

# tcpc through HAProxy; prints tcpc's JSON line.
cmd_load() {
  local secs=${1:?seconds} conc=${2:?concurrency} kind=${3:-oneshot} extra=()
  [[ $kind == keepalive ]] && extra=(--keepalive)
  lb_exec "$BIN/tcpc" --host 127.0.0.1 --port "$LB_PORT" --duration "$secs" \
    --concurrency "$conc" "${extra[@]}" --json --timeout-ms 5000
}

cpu_ticks() {  # user+system ticks of every running host
  local sum=0
  for f in "$STATE"/h[0-9]*.pid; do
    pid_alive "$f" || continue
    local stat
    stat=$(cat "/proc/$(cat "$f")/stat")
    stat=${stat##*) }
    read -r -a fields <<<"$stat"
    sum=$((sum + fields[11] + fields[12]))
  done
  echo $sum
}

# G generators at once, each its own "host", merged: per generator and merged figures.
cmd_bench_generators() {
  local g=$1 k=$2 secs=${BENCH_SECONDS:-5} conc=${BENCH_CONCURRENCY:-32}
  local out=$ROOT/build/cluster-bench-generators.md lb=127.0.0.1 pids=()
  trap 'cmd_down >/dev/null 2>&1' EXIT
  trap 'exit 130' INT TERM
  [[ -x "$BIN/tcpc" ]] || die "no $BIN/tcpc (cmake --build --preset release)"
  cmd_up "$k" --quiet >/dev/null 2>&1 || die "up $k failed"
  gen_up "$g"
  [[ $(mode) == netns ]] && lb=10.77.0.1
  rm -f "$STATE"/gen[0-9]*.json
  for n in $(seq "$g"); do
    local src=()
    # On loopback each generator gets its own source address instead of a namespace.
    [[ $(mode) == netns ]] || src=(--source "127.0.0.$((200 + n))")
    gen_exec "$n" "$BIN/tcpc" --host "$lb" --port "$LB_PORT" "${src[@]}" --duration "$secs" \
      --concurrency "$conc" --keepalive --json --timeout-ms 5000 >"$STATE/gen$n.json" 2>"$STATE/gen$n.err" &
    pids+=($!)
  done
  local rc=0
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  "$BIN/tcpc" merge "$STATE"/gen[0-9]*.json >"$STATE/merged.json" || rc=1
  mkdir -p "$ROOT/build"
  python3 - "$STATE" "$g" "$k" "$(mode)" "$conc" "$secs" >"$out" <<'PY'
import json, sys
state, g, k, mode, conc, secs = sys.argv[1:7]
print(f"{g} generators ({mode}), {conc} keep-alive connections each, {secs} s, against {k} hosts "
      "through HAProxy; merged with tcpc merge\n")
print("| generator | requests | ok | failed | seconds | rps | p50 µs | p99 µs | p99.9 µs |")
print("|---|---|---|---|---|---|---|---|---|")
rows = [(f"g{n}", json.load(open(f"{state}/gen{n}.json"))) for n in range(1, int(g) + 1)]
rows.append(("**merged**", json.load(open(f"{state}/merged.json"))))
for name, j in rows:
    print(f"| {name} | {j['requests']} | {j['ok']} | {j['failed']} | {j['seconds']:.2f} | "
          f"{j['rps']:.0f} | {j['p50_us']} | {j['p99_us']} | {j['p999_us']} |")
PY
  cat "$out"
  cmd_down >/dev/null 2>&1
  return $rc
}

cmd_bench() {
  if [[ ${1:-} == --generators ]]; then
    local g=${2:?--generators G} k=2
    [[ ${3:-} == --hosts ]] && k=${4:?--hosts K}
    cmd_bench_generators "$g" "$k"
    return
  fi
  local out=$ROOT/build/cluster-bench.md secs=${BENCH_SECONDS:-5}
  # Ctrl-C or a failure between rows: the cluster of the row under way comes down too.
  trap 'cmd_down >/dev/null 2>&1' EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$ROOT/build"
  {
    echo "| K | load | rps | p50 µs | p99 µs | failed | server CPU µs/req (all hosts) | per-host stot |"
    echo "|---|---|---|---|---|---|---|---|"
  } >"$out"
  local hz
  hz=$(getconf CLK_TCK)
  for spec in "0:8:oneshot:32" "0:8:keepalive:32" "20:4:keepalive:64"; do
    IFS=: read -r delay workers kind conc <<<"$spec"
    for k in 1 2 4; do
      cmd_up "$k" --workers "$workers" --delay-ms "$delay" --quiet >/dev/null 2>&1 || die "up $k failed"
      local t0 json t1 req
      t0=$(cpu_ticks)
      json=$(cmd_load "$secs" "$conc" "$kind")
      t1=$(cpu_ticks)
      req=$(sed -n 's/.*"ok":\([0-9]*\).*/\1/p' <<<"$json")
      local per_host
      per_host=$(stats | awk '{ printf "%s%s=%s", sep, $1, $4; sep=" " }')
      printf '| %s | %s c=%s%s | %s | %s | %s | %s | %.1f | %s |\n' "$k" "$kind" "$conc" \
        "$([[ $delay != 0 ]] && echo ", --delay-ms $delay, W=$workers")" \
        "$(sed -n 's/.*"rps":\([0-9.]*\).*/\1/p' <<<"$json")" \
        "$(sed -n 's/.*"p50_us":\([0-9]*\).*/\1/p' <<<"$json")" \
        "$(sed -n 's/.*"p99_us":\([0-9]*\).*/\1/p' <<<"$json")" \
        "$(sed -n 's/.*"failed":\([0-9]*\).*/\1/p' <<<"$json")" \
        "$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$req" 'BEGIN { print (r > 0 ? d * 1e6 / hz / r : 0) }')" "$per_host" >>"$out"
      cmd_down >/dev/null 2>&1
    done
  done
  cat "$out"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kill) cmd_kill "${2:-}" ;;
  drain) cmd_drain "${2:-}" ;;
  restart) cmd_restart "${2:-}" ;;
  bench) shift; cmd_bench "$@" ;;
  load) shift; cmd_load "$@" ;;
  stats) stats ;;
  lb-exec) shift; lb_exec "$@" ;;
  wait-status) wait_status "${2:?N}" "${3:?UP|DOWN}" "${4:-10000}" ;;
  *) sed -n '2,17p' "$0" >&2; exit 2 ;;
esac
