#include "udp_guard.hpp"

#include <algorithm>

namespace tcpd {

bool reflection_port(uint16_t port) {
  // 7 echo, 9 discard, 13 daytime, 17 qotd, 19 chargen, 37 time, 53 DNS, 69 TFTP, 111 portmap,
  // 123 NTP, 137 NetBIOS, 161 SNMP, 389 CLDAP, 520 RIP, 1900 SSDP, 3702 WS-Discovery,
  // 5353 mDNS, 11211 memcached.
  static constexpr std::array<uint16_t, 19> kPorts = {
      0, 7, 9, 13, 17, 19, 37, 53, 69, 111, 123, 137, 161, 389, 520, 1900, 3702, 5353, 11211};
  return std::find(kPorts.begin(), kPorts.end(), port) != kPorts.end();
}

struct SourceRateLimiter::Shard {
  struct Bucket {
    SourceKey key;
    double tokens;
    Clock::time_point last;
  };
  std::mutex mutex;
  std::size_t capacity = 0;
  std::list<Bucket> recent;  // most recently seen first
  std::unordered_map<SourceKey, std::list<Bucket>::iterator, IpKeyHash> index;
};

SourceRateLimiter::SourceRateLimiter(double rate, std::size_t capacity)
    : rate_(rate), shards_(std::make_unique<Shard[]>(kShards)) {
  for (std::size_t i = 0; i < kShards; ++i) {
    shards_[i].capacity = std::max<std::size_t>(1, capacity / kShards);
  }
}

SourceRateLimiter::~SourceRateLimiter() = default;

bool SourceRateLimiter::allow(const SourceKey& key, Clock::time_point now) {
  Shard& shard = shards_[IpKeyHash{}(key) % kShards];
  const std::lock_guard lock(shard.mutex);
  auto found = shard.index.find(key);
  if (found == shard.index.end()) {
    if (shard.index.size() >= shard.capacity) {
      shard.index.erase(shard.recent.back().key);
      shard.recent.pop_back();
    }
    // A new source starts with a full second's budget, less this datagram.
    shard.recent.push_front({key, rate_ - 1, now});
    shard.index.emplace(key, shard.recent.begin());
    return rate_ >= 1;
  }
  shard.recent.splice(shard.recent.begin(), shard.recent, found->second);
  Shard::Bucket& b = *found->second;
  const double elapsed = std::chrono::duration<double>(now - b.last).count();
  b.tokens = std::min(rate_, b.tokens + std::max(0.0, elapsed) * rate_);
  b.last = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

std::size_t SourceRateLimiter::tracked() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    const std::lock_guard lock(shards_[i].mutex);
    n += shards_[i].index.size();
  }
  return n;
}

}  // namespace tcpd
