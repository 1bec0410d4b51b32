#include "cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace tcpd {

IpKey ip_key(const sockaddr* sa) {
  IpKey k{};
  if (sa->sa_family == AF_INET6) {
    std::memcpy(k.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
  } else if (sa->sa_family == AF_INET) {
    k[10] = 0xff;
    k[11] = 0xff;
    std::memcpy(k.data() + 12, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, 4);
  }
  return k;
}

namespace {

// splitmix64's finalizer: every input bit moves every output bit, so that keys differing only
// in an IPv4 address's last bits spread over shards and buckets alike.
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::size_t IpKeyHash::operator()(const IpKey& k) const noexcept {
  uint64_t a = 0, b = 0;
  std::memcpy(&a, k.data(), 8);
  std::memcpy(&b, k.data() + 8, 8);
  return static_cast<std::size_t>(mix(a ^ mix(b)));
}

IpKey masked(const IpKey& k, unsigned bits) {
  IpKey m{};
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned keep = bits >= (i + 1) * 8 ? 8 : bits > i * 8 ? bits - i * 8 : 0;
    m[i] = keep == 0 ? 0 : static_cast<uint8_t>(k[i] & (0xff << (8 - keep)));
  }
  return m;
}

std::string parse_cidr(std::string_view text, Cidr& out) {
  const std::string item(text);
  const auto slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  in6_addr a6{};
  in_addr a4{};
  unsigned max_bits = 0;
  if (::inet_pton(AF_INET, addr.c_str(), &a4) == 1) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr = a4;
    out.base = ip_key(reinterpret_cast<sockaddr*>(&sin));
    max_bits = 32;
  } else if (::inet_pton(AF_INET6, addr.c_str(), &a6) == 1) {
    std::memcpy(out.base.data(), &a6, 16);
    max_bits = 128;
  } else {
    return item + ": not an IPv4 or IPv6 address";
  }
  unsigned bits = max_bits;
  if (slash != std::string_view::npos) {
    const std::string_view len = text.substr(slash + 1);
    const auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), bits);
    if (len.empty() || ec != std::errc() || end != len.data() + len.size() || bits > max_bits) {
      return item + ": the prefix length must be 0 to " + std::to_string(max_bits);
    }
  }
  out.bits = max_bits == 32 ? 96 + bits : bits;
  out.base = masked(out.base, out.bits);
  return {};
}

void CidrSet::add(const Cidr& c) {
  if (nets_[c.bits].insert(masked(c.base, c.bits)).second) ++rules_;
  if (std::find(lengths_.begin(), lengths_.end(), c.bits) == lengths_.end()) {
    lengths_.push_back(c.bits);
    std::sort(lengths_.begin(), lengths_.end(), std::greater<>());
  }
}

std::string CidrSet::add_list(std::string_view list) {
  std::size_t at = 0;
  while (at <= list.size()) {
    const std::size_t comma = std::min(list.find(',', at), list.size());
    const std::string_view item = list.substr(at, comma - at);
    Cidr c;
    if (std::string why = parse_cidr(item, c); !why.empty()) return why;
    add(c);
    at = comma + 1;
  }
  return {};
}

bool CidrSet::contains(const IpKey& k) const {
  for (unsigned bits : lengths_) {
    if (nets_[bits].count(masked(k, bits)) != 0) return true;
  }
  return false;
}

}  // namespace tcpd
