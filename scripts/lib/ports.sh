# Sourced by the benchmark scripts: loopback ports for servers they start.
# free_port: a free TCP port below the ephemeral range (32768+), so it can never collide with a
# client's source port. wait_listening PORT [TRIES]: up to TRIES × 50 ms (default 5 s) for
# something to listen on it.
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 12000))
    ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
  done
  return 1
}
wait_listening() {
  for _ in $(seq "${2:-100}"); do ss -Htln "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  return 1
}
