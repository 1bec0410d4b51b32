#include "udp_stats.hpp"

#include <fmt/format.h>

namespace tcpd {

std::string_view udp_drop_name(UdpDrop d) {
  switch (d) {
    case UdpDrop::too_long: return "too_long";
    case UdpDrop::rate_limited: return "rate_limited";
    case UdpDrop::reflection_port: return "reflection_port";
    case UdpDrop::send_error: return "send_error";
    case UdpDrop::kernel_buffer: return "kernel_buffer";
    case UdpDrop::denied: return "denied";
    case UdpDrop::count_: break;
  }
  return "?";
}

uint64_t UdpSnapshot::dropped_total() const {
  uint64_t n = 0;
  for (auto v : dropped) n += v;
  return n;
}

std::string UdpSnapshot::format() const {
  std::string out = fmt::format("udp_received={} udp_sent={}", received, sent);
  for (std::size_t i = 0; i < dropped.size(); ++i) {
    out += fmt::format(" udp_{}={}", udp_drop_name(static_cast<UdpDrop>(i)), dropped[i]);
  }
  out += fmt::format(" udp_bytes_in={} udp_bytes_out={}", bytes_in, bytes_out);
  return out;
}

}  // namespace tcpd
