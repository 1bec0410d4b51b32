#!/usr/bin/env bash
# The benchmarks' one entry point: scripts/bench.sh SUBCOMMAND [ARGS...]
#
#   matrix [--reps N] [--seconds S] [--quick] [--only SECTION]
#            tcpd against shared/bench's floor and thread pool: one-shot, keep-alive, pool
#            efficiency, fairness, memory, tcpc against the reference generator, tcpc at scale;
#            CSV, a Markdown summary and plots in build/bench/ (bench_matrix.sh)
#   paired [LABEL=]SERVER_A [LABEL=]SERVER_B
#            two servers at once, each capped at the same share of CPU 0 (root: cgroups), the
#            way to compare two builds, or tcpd and Asio, within a few percent; env ROUNDS,
#            SHARE, SECONDS_PER_RUN, LOADS (bench_paired.sh)
#   serverbound [LABEL=]TCPD...
#            tcpc (one thread) against tcpd builds and Asio, the server's core saturated;
#            env LOADS, ROUNDS (bench_serverbound.sh)
#   instructions [LABEL=]TCPD...
#            user-space instructions per keep-alive request, by callgrind (bench_instructions.sh)
#   loris [TCPD...]
#            slow-loris clients and silent bursts, single runs (bench_loris.sh)
#   metrics [REPS] [SECONDS]
#            what --metrics and a scrape every 100 ms cost (bench_metrics.sh)
#   udp paired|generator|allcores|memory
#            UDP: tcpd --udp against udp_reflector at the same CPU budget, tcpc --udp against
#            sockperf, both cores, memory over 10 million datagrams (bench_udp.sh)
#   schedule [LABEL=]TCPC_A [[LABEL=]TCPC_B]
#            how close tcpc's open loop sends to its schedule at 1,000/s on 4 connections:
#            corrected against uncorrected p50, send lateness (bench_schedule.sh)
#   attack [--clients N] [SCENARIO...]
#            the red-team scenarios, each with its probe and checks (attack.sh)
#
# Each subcommand's own help: scripts/bench.sh SUBCOMMAND --help. Figures and method:
# docs/BENCHMARKS.md.
set -euo pipefail
here=$(dirname "$0")
usage() { sed -n '2,31p' "$0"; }
[[ $# -ge 1 ]] || { usage; exit 2; }
cmd=$1
shift
case $cmd in
  matrix | paired | serverbound | instructions | loris | metrics | udp | schedule) exec bash "$here/bench_$cmd.sh" "$@" ;;
  attack) exec bash "$here/attack.sh" "$@" ;;
  -h | --help | help) usage ;;
  *) echo "bench.sh: unknown subcommand '$cmd' (see scripts/bench.sh --help)" >&2; exit 2 ;;
esac
