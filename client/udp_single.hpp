#pragma once

#include <string>
#include <variant>

#include "client_config.hpp"
#include "fd.hpp"
#include "load.hpp"

namespace tcpd {

// `tcpc --udp` without load mode: --msg as one datagram (each stdin line with --msg -), its
// reply printed. Each attempt waits --timeout-ms; --retries more are sent before giving up.
// Returns the exit status; errors are one line on stderr.
int run_udp_single(const ClientConfig& cfg);

// The addresses `cfg.host` resolves to for datagrams, in the resolver's order; or the reason it
// does not resolve.
std::variant<std::vector<Target>, std::string> resolve_udp(const ClientConfig& cfg);

// The payload size of a load-mode datagram: --size (default 64), at least the stamp.
std::size_t udp_datagram_size(const ClientConfig& cfg);

}  // namespace tcpd
