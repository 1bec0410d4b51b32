# Sourced by the paired benchmarks (bench_paired.sh, bench_udp.sh).
# capped_cgroups NAME SHARE: two CPU cgroups, NAME-$$-a and NAME-$$-b, each capped at SHARE
# percent of one core (cgroup v1's cpu controller, or v2's cpu.max), appended to CG; the caller
# removes them (rmdir) on exit. A 10 ms period: a capped server is never off for long.
capped_cgroups() {
  local name=$1 share=$2 period=10000 quota=$(($2 * 100)) s g
  if [[ -w /sys/fs/cgroup/cpu/cgroup.procs && -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; then
    for s in a b; do
      g=/sys/fs/cgroup/cpu/$name-$$-$s
      mkdir "$g" && CG+=("$g")
      echo $period >"$g/cpu.cfs_period_us" && echo $quota >"$g/cpu.cfs_quota_us"
    done
  elif grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
    for s in a b; do
      g=/sys/fs/cgroup/$name-$$-$s
      mkdir "$g" && CG+=("$g")
      echo "$quota $period" >"$g/cpu.max"
    done
  else
    echo "$name: no CPU cgroup controller to cap the servers with (run as root)" >&2
    return 1
  fi
}

# bench_cleanup: ends the servers whose PIDs are in PIDS, removes the cgroups in CG and the
# folder OUT. For: trap bench_cleanup EXIT.
bench_cleanup() {
  local p g
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for g in "${CG[@]}"; do rmdir "$g" 2>/dev/null || true; done
  rm -rf "$OUT"
}
