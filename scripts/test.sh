#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test: the GoogleTest suites in a release
# build, again under ThreadSanitizer and under AddressSanitizer+UBSan, a bounded libFuzzer run
# of the request framer, a small shell stress run, the red-team attack scenarios, the scale-out fault tests (HAProxy in front of
# tcpd hosts in network namespaces: kill -9, drain, rolling restart, --reuseport, socket
# activation; loopback addresses where namespaces are not allowed), and the Debian package (built, its contents
# and units checked; under CI also installed with apt and removed again).
# Usage: scripts/test.sh [--quick]     --quick: release build only (no sanitizers, fuzz, stress)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

scripts/deps.sh

failed=()
step() { echo; echo "=== $* ==="; }

suite() {
  local preset=$1
  step "build + ctest: $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  if ! ctest --preset "$preset" -j2; then
    # A second pass over only the failures tells a flaky timing from a real failure; both count.
    echo "test.sh: $preset had failures; rerunning them once for the log" >&2
    ctest --preset "$preset" --rerun-failed || true
    failed+=("$preset")
  fi
}

suite release

step "lint: clang-format, and clang-tidy's cognitive complexity (<= 25)"
sources=(server/*.cpp server/*.hpp common/*.cpp common/*.hpp client/*.cpp client/*.hpp
         tests/*/*.cpp tests/*/*.hpp)
if ! clang-format --dry-run -Werror "${sources[@]}"; then
  failed+=(format)
fi
if ! clang-tidy -p build/release --quiet --checks='-*,readability-function-cognitive-complexity' \
    --warnings-as-errors='*' server/*.cpp common/*.cpp client/*.cpp 2>/dev/null; then
  failed+=(complexity)
fi

if [[ $quick -eq 0 ]]; then
  suite tsan
  suite asan

  step "fuzz: line framer, ${FUZZ_SECONDS}s"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz
  corpus=$(mktemp -d)
  printf 'hello\n' >"$corpus/line"
  printf 'a\r\nb\rc\n\n' >"$corpus/crlf"
  if ! build/fuzz/bin/fuzz_line_framer -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "$corpus" 2>&1 | tail -n 5; then
    failed+=(fuzz)
  fi
  rm -rf "$corpus"
  step "fuzz: PROXY protocol header, ${FUZZ_SECONDS}s"
  corpus=$(mktemp -d)
  printf 'PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\nhello\n' >"$corpus/v1"
  printf 'PROXY UNKNOWN\r\n' >"$corpus/v1-unknown"
  printf '\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc0\x00\x02\x02\x04\xd2\x00\x50' >"$corpus/v2"
  printf '\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00' >"$corpus/v2-local"
  if ! build/fuzz/bin/fuzz_proxy_header -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 "$corpus" 2>&1 | tail -n 5; then
    failed+=(fuzz)
  fi
  rm -rf "$corpus"

  step "stress: scripts/stress.sh (small)"
  if ! scripts/stress.sh --procs 8 --requests 200 --load 2000 --workers 4; then
    failed+=(stress)
  fi

  step "attacks: scripts/attack.sh (red-team scenarios against a real tcpd)"
  if ! scripts/attack.sh; then
    failed+=(attack)
  fi

  step "scale-out faults: scripts/cluster_test.sh (HAProxy, namespaces, rolling restarts)"
  if ! scripts/cluster_test.sh; then
    failed+=(cluster)
  fi

  step "package: scripts/package.sh"
  package_args=(--check)
  [[ -n "${CI:-}" && $(id -u) -eq 0 ]] && package_args=(--install)
  if ! scripts/package.sh "${package_args[@]}"; then
    failed+=(package)
  fi
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "test.sh: FAILED: ${failed[*]}"
  exit 1
fi
echo "test.sh: all suites passed"
