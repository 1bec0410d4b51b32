#!/usr/bin/env bash
# Installs what building and testing tcpd needs, from Debian's packages, skipping what is there.
# Usage: scripts/deps.sh [extra packages...]     (as root, or with sudo available)
set -euo pipefail

packages=(
  g++ cmake make pkg-config          # toolchain
  libfmt-dev libcli11-dev            # formatting, flag parsing
  libgtest-dev libbenchmark-dev      # tests, micro-benchmarks
  clang libclang-rt-14-dev           # libFuzzer for the framer fuzz target
  python3                            # the tutorial's server and client (interop tests)
  socat netcat-openbsd               # interop with standard tools
  iproute2 procps bsdutils           # ss, pgrep, script(1) for scripts and tests
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
