#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace tcpd {

// An IP address as 16 bytes: IPv6 as it is, IPv4 as its mapped form (::ffff:a.b.c.d), so that
// one key covers both families and a dual-stack listener's mapped peers.
using IpKey = std::array<uint8_t, 16>;
IpKey ip_key(const sockaddr* sa);

struct IpKeyHash {
  std::size_t operator()(const IpKey& k) const noexcept;
};

// A network: `bits` leading bits of `base` over the 128-bit form (an IPv4 /n is 96 + n).
struct Cidr {
  IpKey base{};
  unsigned bits = 128;
};

// "192.0.2.0/24", "2001:db8::/32", "10.1.2.3" (one host), "::ffff:10.0.0.0/104". Returns the
// reason when `text` is none of those ("300.1.1.1: not an IPv4 or IPv6 address").
std::string parse_cidr(std::string_view text, Cidr& out);

// A set of networks with a lookup that is not a scan of the rules: a hash set of masked
// addresses per prefix length in use, so a lookup costs one probe per distinct length (at most
// 129) whatever the number of rules.
class CidrSet {
 public:
  void add(const Cidr& c);
  // "CIDR[,CIDR...]" added; the first bad item's reason, or "" when all were good.
  std::string add_list(std::string_view list);
  [[nodiscard]] bool contains(const IpKey& k) const;
  [[nodiscard]] bool contains(const sockaddr* sa) const { return contains(ip_key(sa)); }
  [[nodiscard]] bool empty() const { return rules_ == 0; }
  [[nodiscard]] std::size_t size() const { return rules_; }

 private:
  std::array<std::unordered_set<IpKey, IpKeyHash>, 129> nets_;
  std::vector<unsigned> lengths_;  // in use, longest first
  std::size_t rules_ = 0;
};

// `k` with all but its first `bits` bits cleared.
IpKey masked(const IpKey& k, unsigned bits);

}  // namespace tcpd
