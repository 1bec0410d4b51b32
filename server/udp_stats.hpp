#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "stats.hpp"

namespace tcpd {

// Why a datagram got no reply. Every datagram counted received is either sent or one of these.
enum class UdpDrop : std::size_t {
  too_long,         // longer than --max-message: answered "ERR too long", never served
  rate_limited,     // its source had used up --udp-source-rate
  reflection_port,  // from port 0 or a port whose service answers datagrams (echo, chargen, ...)
  send_error,       // the reply could not be sent
  kernel_buffer,    // the socket's receive buffer was full: the kernel dropped it (SO_RXQ_OVFL)
  denied,           // its source is outside --allow, or inside --deny
  count_
};

std::string_view udp_drop_name(UdpDrop d);

struct UdpSnapshot {
  // Datagrams that reached tcpd's sockets: read, plus those the kernel dropped for want of room.
  uint64_t received = 0;
  uint64_t sent = 0;  // replies sent to requests served
  std::array<uint64_t, static_cast<std::size_t>(UdpDrop::count_)> dropped{};
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  HistogramSnapshot request_duration;  // a batch read -> its reply sent

  [[nodiscard]] uint64_t of(UdpDrop d) const { return dropped[static_cast<std::size_t>(d)]; }
  [[nodiscard]] uint64_t dropped_total() const;
  // "udp_received=3 udp_sent=2 udp_too_long=1 ..."
  [[nodiscard]] std::string format() const;
};

// One UDP worker's counters, on cache lines of their own.
struct alignas(64) UdpSlot {
  std::atomic<uint64_t> read{0};
  std::atomic<uint64_t> sent{0};
  std::array<std::atomic<uint64_t>, static_cast<std::size_t>(UdpDrop::count_)> dropped{};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  Histogram request_duration;

  void add(std::atomic<uint64_t>& a, uint64_t n) { a.fetch_add(n, std::memory_order_relaxed); }
  void drop(UdpDrop d, uint64_t n = 1) { add(dropped[static_cast<std::size_t>(d)], n); }
};

}  // namespace tcpd
