#!/usr/bin/env bash
# Installs what building needs (not the test tools), builds the release binaries and starts tcpd
# in the foreground.
# Usage: scripts/run.sh [tcpd flags...]      e.g. scripts/run.sh --port 12345 --workers 8
# Stop it with Ctrl-C (one drains and prints the summary; a second exits at once).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build
cmake --preset dist >&2
cmake --build --preset dist --target tcpd tcpc >&2  # stdout is tcpd's alone
echo "run.sh: binaries in build/dist/bin (tcpd, tcpc)" >&2
exec build/dist/bin/tcpd "$@"
