#!/usr/bin/env bash
# Installs what building (and testing) tcpd needs, from Debian's packages, skipping what is there.
# Usage: scripts/deps.sh [build|test] [extra packages...]     (as root, or with sudo available)
#   build: the compiler and the libraries tcpd and tcpc are built with (scripts/run.sh)
#   test:  also GoogleTest, Google Benchmark, clang (libFuzzer), socat, python3, systemd's
#          socket activator, HAProxy and promtool (scripts/test.sh) -- the default
set -euo pipefail

role=test
if [[ "${1:-}" == "build" || "${1:-}" == "test" ]]; then
  role=$1
  shift
fi

packages=(
  g++ cmake make pkg-config          # toolchain
  libfmt-dev libcli11-dev            # formatting, flag parsing
  nlohmann-json3-dev                 # JSON strings: escaping, control characters, bad UTF-8
)
if [[ $role == test ]]; then
  packages+=(
    libgtest-dev libbenchmark-dev      # tests, micro-benchmarks
    clang libclang-rt-14-dev           # libFuzzer for the framer fuzz target
    clang-format clang-tidy            # the lint step
    python3                            # the tutorial's server and client (interop tests)
    socat netcat-openbsd curl          # interop with standard tools
    iproute2 procps bsdutils           # ss, pgrep, script(1) for scripts and tests
    dpkg-dev                           # dpkg-shlibdeps, for the .deb's dependencies
    systemd                            # systemd-socket-activate, systemd-analyze (no daemon needed)
    haproxy                            # scripts/cluster.sh
  )
fi
packages+=("$@")

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  SUDO=(sudo)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
need_promtool=0
[[ $role == test ]] && ! command -v promtool >/dev/null && need_promtool=1
[[ ${#missing[@]} -eq 0 && $need_promtool -eq 0 ]] && exit 0

if [[ ${#SUDO[@]} -gt 0 ]] && ! command -v sudo >/dev/null; then
  echo "deps: need root to install: ${missing[*]} ${need_promtool:+promtool}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "deps: installing ${missing[*]}" >&2
  # haproxy's package starts a service where an init system runs; tests start their own.
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ $need_promtool -eq 1 ]]; then
  # promtool (metrics validation) ships only inside Debian's prometheus package, whose install
  # would also start a Prometheus server: take the one binary out of the .deb instead.
  echo "deps: installing promtool (from Debian's prometheus package) to /usr/local/bin" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -qq prometheus >/dev/null)
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
  "${SUDO[@]}" install -m 0755 "$tmp/usr/bin/promtool" /usr/local/bin/promtool
fi
