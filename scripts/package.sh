#!/usr/bin/env bash
# Builds the Debian package build/dist/tcpd-line-service_<version>_<arch>.deb (release binaries,
# unit files, /etc/default/tcpd, man pages) with CPack, and with --check verifies it: its contents
# (dpkg-deb -c), its dependencies, lintian (no errors), the unit files (systemd-analyze verify),
# and that the tcpd inside answers. --install also installs it with apt as Debian users would,
# checks /usr/bin/tcpd, that apt offers nothing of Debian's in its place (Debian's own "tcpd" is
# TCP wrappers), and removes and purges it again.
# Usage: scripts/package.sh [--check] [--install]
set -euo pipefail
cd "$(dirname "$0")/.."

check=0 install=0
for a in "$@"; do
  case $a in
    --check) check=1 ;;
    --install) check=1 install=1 ;;
    *) echo "package.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

scripts/deps.sh build dpkg-dev lintian
cmake --preset dist >/dev/null
cmake --build --preset dist
(cd build/dist && cpack -G DEB >/dev/null)
deb=$(ls -t build/dist/tcpd-line-service_*.deb | head -n 1)
echo "package.sh: $deb"
[[ $check -eq 0 ]] && exit 0

fail() { echo "package.sh: FAILED: $*" >&2; exit 1; }

contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/tcpd ./usr/bin/tcpc ./usr/lib/systemd/system/tcpd.service \
         ./usr/lib/systemd/system/tcpd.socket ./usr/share/man/man1/tcpd.1.gz \
         ./usr/share/man/man1/tcpc.1.gz ./etc/default/tcpd \
         ./usr/share/doc/tcpd-line-service/copyright \
         ./usr/share/doc/tcpd-line-service/changelog.gz; do
  grep -q " $f\$" <<<"$contents" || fail "$f is not in the package"
done
depends=$(dpkg-deb -f "$deb" Depends)
grep -q "libc6" <<<"$depends" || fail "Depends lacks libc6: $depends"
grep -qE "libstdc|libfmt|libgtest" <<<"$depends" && fail "unexpected runtime dependency: $depends"
echo "package.sh: contents and Depends ($depends) look right"
# Errors fail; warnings are shown. Not Debian-archive rules (no source package, no upstream
# tarball to sign): those tags are the package's nature, not defects.
if ! lintian --fail-on error "$deb"; then
  fail "lintian reports errors"
fi
echo "package.sh: lintian finds no errors"

tmp=$(mktemp -d)
pid=""
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
dpkg-deb -x "$deb" "$tmp/root"
grep -q "^ExecStart=/usr/bin/tcpd " "$tmp/root/usr/lib/systemd/system/tcpd.service" ||
  fail "the unit's ExecStart does not point at /usr/bin/tcpd"
if command -v systemd-analyze >/dev/null; then
  # Verified with ExecStart pointing at the unpacked binary (it is not installed here).
  sed "s|/usr/bin/tcpd|$tmp/root/usr/bin/tcpd|" "$tmp/root/usr/lib/systemd/system/tcpd.service" \
    >"$tmp/tcpd.service"
  cp "$tmp/root/usr/lib/systemd/system/tcpd.socket" "$tmp/"
  systemd-analyze verify --man=no "$tmp/tcpd.socket" "$tmp/tcpd.service" ||
    fail "systemd-analyze verify"
  echo "package.sh: unit files verify"
fi

# The packaged tcpd answers.
answers() {
  local bin=$1 client=$2
  "$bin" --port 0 --bind 127.0.0.1 --quiet >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$tmp/out" && break; sleep 0.05; done
  local port
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/out")
  [[ -n "$port" ]] || fail "$bin did not start: $(cat "$tmp/err")"
  local reply
  reply=$("$client" --host 127.0.0.1 --port "$port" --msg hi)
  kill -TERM "$pid"
  wait "$pid" || fail "$bin did not exit 0 after SIGTERM"
  pid=""
  [[ "$reply" == "Hello from the server!" ]] || fail "$bin answered '$reply'"
}
answers "$tmp/root/usr/bin/tcpd" "$tmp/root/usr/bin/tcpc"
echo "package.sh: the packaged tcpd answers"

if [[ $install -eq 1 ]]; then
  if dpkg-query -W -f='${Status}' tcpd-line-service 2>/dev/null | grep -q "install ok installed"; then
    echo "package.sh: tcpd-line-service is installed already; not touching it" >&2
    exit 0
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >/dev/null ||
    fail "apt-get install ./$deb"
  answers /usr/bin/tcpd /usr/bin/tcpc
  man -w tcpd >/dev/null 2>&1 || [[ -f /usr/share/man/man1/tcpd.1.gz ]] || fail "man page"
  # The upgrade path: nothing apt would install over it (the old name offered TCP wrappers).
  offered=$(apt-get -s upgrade 2>/dev/null | grep -E '^Inst (tcpd|tcpd-line-service) ' || true)
  [[ -z $offered ]] || fail "apt-get upgrade would install: $offered"
  DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq tcpd-line-service >/dev/null
  [[ -f /etc/default/tcpd ]] || fail "remove took the conffile /etc/default/tcpd"
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq tcpd-line-service >/dev/null
  [[ ! -e /etc/default/tcpd ]] || fail "purge left /etc/default/tcpd"
  echo "package.sh: apt-get install ./$(basename "$deb") works, /usr/bin/tcpd answers, apt" \
    "offers no tcpd over it; remove keeps /etc/default/tcpd, purge removes it"
fi
