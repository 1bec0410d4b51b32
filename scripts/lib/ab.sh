# Sourced by the A/B benchmark scripts (bench_serverbound.sh, bench_instructions.sh).
# ab_args [LABEL=]BIN...: fills LABELS and BINS (absolute paths, so call it before any cd;
#   a label defaults to the file's name).
# ab_tools SCRIPT TCPC ASIO: stops with a message unless both are executable.
# SPID holds the server a script has started; ab_cleanup ends it (by its PID) and removes the
# paths it is given: trap 'ab_cleanup "$TMP"' EXIT.
ab_args() {
  LABELS=() BINS=()
  for arg in "$@"; do
    if [[ $arg == *=* ]]; then LABELS+=("${arg%%=*}"); BINS+=("$(realpath "${arg#*=}")")
    else LABELS+=("$(basename "$arg")"); BINS+=("$(realpath "$arg")"); fi
  done
}
ab_tools() {
  [[ -x $2 && -x $3 ]] || { echo "$1: needs $2 and $3" >&2; exit 2; }
}
SPID=""
ab_cleanup() {
  if [[ -n $SPID ]]; then kill -TERM "$SPID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$@"
}
