#pragma once

#include <string>

#include "client_config.hpp"
#include "udp_load.hpp"

namespace tcpd {

// "udp open loop, 4 sockets, rate 1000/s: 3000 sent, 2998 received, 2 lost (0.07%), ..." and the
// latency line.
std::string udp_summary_text(const ClientConfig& cfg, const UdpLoadResult& r);
// Lines on stderr when the figures need a caveat: tcpc's own sockets dropped replies (the loss
// is not all the server's), nothing listens, sends failed, a --rate target missed.
std::string udp_warnings(const ClientConfig& cfg, const UdpLoadResult& r);

}  // namespace tcpd
