#!/usr/bin/env bash
# Fault tests for scale-out, each bounded in time, each printing PASS/FAIL with its figures:
#   kill9      kill -9 one of 3 hosts under load: the only failures are its requests in flight,
#              HAProxy marks it down within inter x fall, traffic goes on
#   drain      SIGTERM one host under load: zero failed requests, marked down, exits in time
#   back       the drained host restarted: marked up, receives traffic again
#   rolling    every host restarted in turn under load: zero failed requests
#   reuseport  one host, two processes on one port (--reuseport), old one SIGTERMed under load:
#              zero failures with net.ipv4.tcp_migrate_req=1 (also measured with 0)
#   activated  the systemd path: two processes on one inherited socket, old one SIGTERMed under
#              load: zero failures
#   proxy      PROXY v2 end to end: the hosts log the real client, not HAProxy (namespaces only:
#              on loopback both are 127.0.0.1), and `status` shows it
#   idle       400 keep-alive clients through HAProxy, 4 requests each: zero failed (the
#              per-host maxconn is the host's descriptor limit, not workers + queue)
#   generators `cluster.sh bench --generators 2`: two tcpc, each in its own namespace, merged;
#              the merged row adds up and nothing failed
# Needs haproxy and socat (scripts/deps.sh); tests that need them are skipped with a reason
# otherwise. Ends with "N passed, N failed".
# Usage: scripts/cluster_test.sh [test...]
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${CLUSTER_BIN:-$ROOT/build/release/bin}
export CLUSTER_STATE=${CLUSTER_STATE:-$ROOT/build/cluster-test}
C=scripts/cluster.sh
TMP=$(mktemp -d)
passed=0 failed=0 skipped=0
bg=()

cleanup() {
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
  $C down >/dev/null 2>&1
  ip netns del tcpdc-rr 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() { echo "SKIP $*"; skipped=$((skipped + 1)); }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2"; }
host_stat() { $C stats | awk -v h="$1" -v c="$2" '$1 == h { print $c }'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# tcpc through HAProxy in the background: JSON into $TMP/$1.json
load() {
  local name=$1 secs=$2 conc=$3 kind=$4
  $C load "$secs" "$conc" "$kind" >"$TMP/$name.json" 2>"$TMP/$name.err" &
  bg+=($!)
}
wait_loads() { for p in "${bg[@]}"; do wait "$p" 2>/dev/null; done; bg=(); }
failures() { local sum=0 f; for f in "$@"; do sum=$((sum + $(field failed "$TMP/$f.json"))); done; echo $sum; }
oks() { local sum=0 f; for f in "$@"; do sum=$((sum + $(field ok "$TMP/$f.json"))); done; echo $sum; }
# On a failure, tcpc's own JSON says which kind (reset, timeout, refused...).
loads_json() { local f; for f in "$@"; do echo "  $f: $(cat "$TMP/$f.json")"; done; }

have_haproxy() { command -v haproxy >/dev/null && command -v socat >/dev/null; }

t_kill9() {
  $C up 3 >/dev/null 2>&1 || { fail "kill9: cluster did not come up"; return; }
  load k9 8 16 oneshot
  sleep 2
  local inflight before_ok t0 down_ms
  inflight=$(host_stat h2 3)
  kill -KILL "$(cat "$CLUSTER_STATE/h2.pid")"
  t0=$(now_ms)
  down_ms=$($C wait-status 2 DOWN 10000) || down_ms=-1
  local others0
  others0=$(($(host_stat h1 4) + $(host_stat h3 4)))
  wait_loads
  local others1 f limit
  others1=$(($(host_stat h1 4) + $(host_stat h3 4)))
  f=$(failures k9)
  limit=$((${CLUSTER_INTER_MS:-300} * 3 + 500))  # inter x fall, plus one interval of phase
  local msg="kill9: failed $f, h2 had $inflight connections at the kill; DOWN after ${down_ms} ms (limit $limit); h1+h3 took $((others1 - others0)) connections after"
  if [[ $down_ms -ge 0 && $down_ms -le $limit && $f -le $((inflight + 2)) && $others1 -gt $others0 ]]; then
    pass "$msg"
  else
    fail "$msg"
  fi
  $C down >/dev/null 2>&1
}

t_drain_and_back() {
  $C up 3 >/dev/null 2>&1 || { fail "drain: cluster did not come up"; return; }
  load d1 8 16 oneshot
  load d2 8 8 keepalive
  sleep 2
  local t0 exit_ms down_ms
  t0=$(now_ms)
  $C drain 2 2>/dev/null
  exit_ms=$(($(now_ms) - t0))
  down_ms=$($C wait-status 2 DOWN 5000) || down_ms=-1
  sleep 1
  local before up_ms after
  before=$(host_stat h2 4)
  t0=$(now_ms)
  $C restart 2 >/dev/null 2>&1
  up_ms=$($C wait-status 2 UP 10000) || up_ms=-1
  up_ms=$(($(now_ms) - t0))
  sleep 1.5
  after=$(host_stat h2 4)
  wait_loads
  local f
  f=$(failures d1 d2)
  local msg="drain: failed $f of $(oks d1 d2) ok (reconnects $(field reconnects "$TMP/d2.json")); h2 exited ${exit_ms} ms after SIGTERM (drain timeout 5000), DOWN in HAProxy"
  if [[ $f -eq 0 && $exit_ms -le 5500 && $down_ms -ge 0 ]]; then pass "$msg"; else fail "$msg"; loads_json d1 d2; fi
  msg="back: h2 UP ${up_ms} ms after restart (rise ${RISE:-2} x inter ${CLUSTER_INTER_MS:-300} ms), took $((after - before)) connections since"
  if [[ $up_ms -le 5000 && $after -gt $before ]]; then pass "$msg"; else fail "$msg"; fi
  $C down >/dev/null 2>&1
}

t_rolling() {
  $C up 3 >/dev/null 2>&1 || { fail "rolling: cluster did not come up"; return; }
  load r1 14 16 oneshot
  load r2 14 8 keepalive
  sleep 1.5
  local n
  for n in 1 2 3; do $C restart "$n" >/dev/null 2>&1 || fail "rolling: restart h$n"; sleep 0.5; done
  wait_loads
  local f
  f=$(failures r1 r2)
  local msg="rolling: restarted h1, h2, h3 in turn under load: failed $f of $(oks r1 r2) ok"
  if [[ $f -eq 0 && $(oks r1 r2) -gt 0 ]]; then pass "$msg"; else fail "$msg"; loads_json r1 r2; fi
  $C down >/dev/null 2>&1
}

# One host, two processes: restart by starting the new one, then SIGTERM the old one.
# In a namespace of its own so that the sysctl is that namespace's alone.
restart_once() {
  local migrate=$1 port=12399 rr=(nsenter --net=/run/netns/tcpdc-rr --)
  ip netns del tcpdc-rr 2>/dev/null
  ip netns add tcpdc-rr || return 1
  ip -n tcpdc-rr link set lo up
  "${rr[@]}" sysctl -q -w "net.ipv4.tcp_migrate_req=$migrate" >/dev/null
  local flags=(--bind 127.0.0.1 --port $port --reuseport --quiet --workers 4)
  "${rr[@]}" "$BIN/tcpd" "${flags[@]}" >"$TMP/a.out" 2>"$TMP/a.err" &
  local a=$!
  bg+=($a)
  sleep 0.3
  "${rr[@]}" "$BIN/tcpc" --host 127.0.0.1 --port $port --duration 5 --concurrency 16 --json \
    >"$TMP/rr1.json" 2>/dev/null &
  bg+=($!)
  "${rr[@]}" "$BIN/tcpc" --host 127.0.0.1 --port $port --duration 5 --concurrency 8 --keepalive \
    --json >"$TMP/rr2.json" 2>/dev/null &
  bg+=($!)
  sleep 1.5
  "${rr[@]}" "$BIN/tcpd" "${flags[@]}" >"$TMP/b.out" 2>"$TMP/b.err" &
  local b=$!
  sleep 0.5
  kill -TERM "$a"
  wait "$a" 2>/dev/null
  local ps=("${bg[@]}")
  bg=()
  for p in "${ps[@]}"; do [[ $p != "$a" ]] && wait "$p" 2>/dev/null; done
  kill -TERM "$b"
  wait "$b" 2>/dev/null
  ip netns del tcpdc-rr
  echo "$(failures rr1 rr2) $(oks rr1 rr2)"
}

t_reuseport() {
  if [[ $(id -u) -ne 0 ]] || ! ip netns add tcpdc-probe 2>/dev/null; then
    skip "reuseport: needs network namespaces (root) to set tcp_migrate_req in a namespace of its own"
    return
  fi
  ip netns del tcpdc-probe
  local with without
  read -r f1 ok1 <<<"$(restart_once 1)"
  read -r f0 ok0 <<<"$(restart_once 0)"
  local msg="reuseport: old process SIGTERMed under load: tcp_migrate_req=1 failed $f1 of $ok1 ok; tcp_migrate_req=0 failed $f0 of $ok0 ok (measured, not asserted)"
  if [[ $f1 -eq 0 && $ok1 -gt 0 ]]; then pass "$msg"; else fail "$msg"; fi
}

t_activated() {
  local msg
  msg=$(python3 - "$BIN" <<'PY'
import json, os, signal, socket, subprocess, sys, time
bin_dir = sys.argv[1]
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(4096)
port = sock.getsockname()[1]
os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)
def start():
    # LISTEN_PID must be tcpd's own pid: sh's $$ becomes tcpd's when sh execs it.
    return subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --quiet --workers 4',
                             bin_dir + "/tcpd"], pass_fds=(3,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
a = start()
time.sleep(0.3)
loads = [subprocess.Popen([bin_dir + "/tcpc", "--host", "127.0.0.1", "--port", str(port),
                           "--duration", "5", "--concurrency", c, "--json"] + extra,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
         for c, extra in (("16", []), ("8", ["--keepalive"]))]
time.sleep(1.5)
b = start()          # the new process on the same socket
time.sleep(0.5)
a.send_signal(signal.SIGTERM)
a.wait(timeout=15)
results = [json.loads(p.communicate(timeout=30)[0]) for p in loads]
b.send_signal(signal.SIGTERM)
b.wait(timeout=15)
failed = sum(r["failed"] for r in results)
ok = sum(r["ok"] for r in results)
print(f"{failed} {ok} {a.returncode} {b.returncode}")
PY
)
  read -r f ok ra rb <<<"$msg"
  msg="activated: two processes on one inherited socket, old one SIGTERMed under load: failed $f of $ok ok (exit codes $ra, $rb)"
  if [[ "$f" == 0 && "$ok" -gt 0 && "$ra" == 0 && "$rb" == 0 ]]; then pass "$msg"; else fail "$msg"; fi
}

t_proxy() {
  $C up 2 >/dev/null 2>&1 || { fail "proxy: cluster did not come up"; return; }
  load p1 2 8 oneshot
  load p2 2 4 keepalive
  wait_loads
  local st f
  st=$($C status)
  f=$(failures p1 p2)
  if [[ $(cat "$CLUSTER_STATE/mode") != netns ]]; then
    skip "proxy: on loopback HAProxy and the client are both 127.0.0.1 (failed $f)"
    $C down >/dev/null 2>&1
    return
  fi
  local real lb
  real=$(cat "$CLUSTER_STATE"/h[12].log | grep -c ' 127\.0\.0\.[0-9]*:[0-9]* closed: served' || true)
  lb=$(cat "$CLUSTER_STATE"/h[12].log | grep -c ' 10\.77\.0\.1:[0-9]* closed' || true)
  local msg="proxy: PROXY v2 through HAProxy: $real connections logged with the client's 127.0.0.x, $lb with HAProxy's 10.77.0.1 (health checks are v2 LOCAL); failed $f"
  if [[ $f -eq 0 && $real -gt 0 && $(echo "$st" | grep -c 'last client: 127\.0\.0\.') -ge 1 ]] &&
    ! grep -q 'bad_header\|denied' "$CLUSTER_STATE"/h[12].log; then
    pass "$msg"
  else
    fail "$msg"
    echo "$st" | sed 's/^/  /'
  fi
  $C down >/dev/null 2>&1
}

t_idle() {
  $C up 2 --quiet >/dev/null 2>&1 || { fail "idle: cluster did not come up"; return; }
  $C lb-exec "$BIN/tcpc" --host 127.0.0.1 --port "${CLUSTER_PORT:-23456}" --concurrency 400 \
    --keepalive --rate 800 --duration 2 --ramp-up 0.5 --json --timeout-ms 5000 >"$TMP/i.json" 2>/dev/null
  local f ok
  f=$(field failed "$TMP/i.json") ok=$(field ok "$TMP/i.json")
  local msg="idle: 400 keep-alive clients through HAProxy, 1600 requests: failed ${f:-?} of ${ok:-?} ok"
  if [[ ${f:-1} -eq 0 && ${ok:-0} -eq 1600 ]]; then pass "$msg"; else fail "$msg"; loads_json i; fi
  $C down >/dev/null 2>&1
}

t_generators() {
  BENCH_SECONDS=2 $C bench --generators 2 >"$TMP/g.md" 2>"$TMP/g.err" ||
    { fail "generators: cluster.sh bench --generators 2 failed: $(tail -n 3 "$TMP/g.err")"; return; }
  local st=${CLUSTER_STATE}
  local check
  check=$(python3 - "$st" <<'PY'
import json, sys
st = sys.argv[1]
g = [json.load(open(f"{st}/gen{n}.json")) for n in (1, 2)]
m = json.load(open(f"{st}/merged.json"))
ok = (m["runs"] == 2 and m["ok"] == g[0]["ok"] + g[1]["ok"] and m["failed"] == 0
      and min(x["ok"] for x in g) > 0 and m["concurrency"] == g[0]["concurrency"] * 2)
print(("ok" if ok else "bad") + f" merged ok={m['ok']} of {g[0]['ok']}+{g[1]['ok']}, failed={m['failed']}, rps={m['rps']:.0f}")
PY
)
  local msg="generators: two generators merged: ${check#* }"
  if [[ $check == ok* ]] && grep -q '^| \*\*merged\*\* |' "$TMP/g.md"; then pass "$msg"; else fail "$msg"; cat "$TMP/g.md"; fi
}

tests=("$@")
[[ ${#tests[@]} -eq 0 ]] && tests=(kill9 drain rolling reuseport activated proxy idle generators)
[[ -x "$BIN/tcpd" && -x "$BIN/tcpc" ]] || { echo "cluster_test: build first (no $BIN/tcpd)" >&2; exit 1; }
for t in "${tests[@]}"; do
  case $t in
    kill9 | drain | rolling | proxy | idle | generators)
      if ! have_haproxy; then skip "$t: haproxy and socat are not installed"; continue; fi
      case $t in
        kill9) t_kill9 ;; drain) t_drain_and_back ;; rolling) t_rolling ;;
        proxy) t_proxy ;; idle) t_idle ;; generators) t_generators ;;
      esac
      ;;
    reuseport) t_reuseport ;;
    activated) t_activated ;;
    *) echo "unknown test $t" >&2; exit 2 ;;
  esac
done
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
