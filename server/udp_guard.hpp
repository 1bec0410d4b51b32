#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "cidr.hpp"
#include "clock.hpp"

namespace tcpd {

// Whether a datagram from this source port must never be answered: port 0 cannot be a real
// client's, and the others are services that answer datagrams themselves (echo, chargen, DNS,
// NTP, SSDP, memcached, ...), so a forged source aimed at one would start a loop or an
// amplified flood.
bool reflection_port(uint16_t port);

// A source address, IPv4 and its mapped IPv6 form one key.
using SourceKey = IpKey;
inline SourceKey source_key(const sockaddr* sa) {
  return ip_key(sa);
}

// --udp-source-rate: at most `rate` replies a second to one source address, bursts up to one
// second's worth (a token bucket per address). The table keeps the `capacity` addresses seen
// most recently; the least recently seen goes first, so a flood of forged addresses costs a
// bounded amount of memory (it only forgets budgets, it never grants more than `rate` a second
// to an address it remembers). Shards with a lock each: the UDP workers rarely meet.
class SourceRateLimiter {
 public:
  SourceRateLimiter(double rate, std::size_t capacity);
  ~SourceRateLimiter();
  SourceRateLimiter(const SourceRateLimiter&) = delete;
  SourceRateLimiter& operator=(const SourceRateLimiter&) = delete;

  // Takes a token for `key` if it has one.
  bool allow(const SourceKey& key, Clock::time_point now);
  [[nodiscard]] std::size_t tracked() const;

 private:
  struct Shard;
  static constexpr std::size_t kShards = 16;
  double rate_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace tcpd
