#include "proxy_header.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>

namespace tcpd {
namespace {

constexpr std::string_view kV1 = "PROXY ";
constexpr std::string_view kV2{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr std::size_t kV1Max = 107;

ProxyHeader bad(std::string_view why) {
  ProxyHeader h;
  h.status = ProxyHeader::Status::bad;
  h.why = why;
  return h;
}

// Whether `bytes` begins with `sig`, or (shorter) is a beginning of it.
bool begins(std::string_view bytes, std::string_view sig) {
  const std::size_t n = std::min(bytes.size(), sig.size());
  return bytes.substr(0, n) == sig.substr(0, n);
}

// The fields of a v1 line after "PROXY ", split on single spaces.
std::size_t split(std::string_view line, std::string_view (&out)[6]) {
  std::size_t n = 0;
  std::size_t at = 0;
  while (at <= line.size() && n < 6) {
    const std::size_t sp = std::min(line.find(' ', at), line.size());
    out[n++] = line.substr(at, sp - at);
    at = sp + 1;
  }
  return at <= line.size() ? 7 : n;  // 7: more fields than a header has
}

bool port_of(std::string_view text, uint16_t& port) {
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || text.size() > 5 || ec != std::errc() || end != text.data() + text.size() ||
      v > 65535 || (text.size() > 1 && text[0] == '0')) {
    return false;
  }
  port = static_cast<uint16_t>(v);
  return true;
}

ProxyHeader parse_v1(std::string_view bytes) {
  const std::size_t crlf = bytes.substr(0, kV1Max).find("\r\n");
  if (crlf == std::string_view::npos) {
    if (bytes.size() >= kV1Max) return bad("a v1 header longer than 107 bytes");
    return {};
  }
  const std::string_view line = bytes.substr(kV1.size(), crlf - kV1.size());
  ProxyHeader h;
  h.status = ProxyHeader::Status::done;
  h.length = crlf + 2;
  if (line == "UNKNOWN" || line.substr(0, 8) == "UNKNOWN ") return h;
  std::string_view f[6];
  if (split(line, f) != 5) return bad("a v1 header without its five fields");
  const int family = f[0] == "TCP4" ? AF_INET : f[0] == "TCP6" ? AF_INET6 : 0;
  if (family == 0) return bad("a v1 header with a protocol other than TCP4, TCP6, UNKNOWN");
  uint16_t sport = 0, dport = 0;
  if (!port_of(f[3], sport) || !port_of(f[4], dport)) return bad("a v1 header with a bad port");
  const std::string src(f[1]), dst(f[2]);
  sockaddr_storage ss{};
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    in_addr d{};
    if (::inet_pton(AF_INET, src.c_str(), &a->sin_addr) != 1 ||
        ::inet_pton(AF_INET, dst.c_str(), &d) != 1) {
      return bad("a v1 header with a bad IPv4 address");
    }
    a->sin_family = AF_INET;
    a->sin_port = htons(sport);
    h.source.set(reinterpret_cast<sockaddr*>(a), sizeof *a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    in6_addr d{};
    if (::inet_pton(AF_INET6, src.c_str(), &a->sin6_addr) != 1 ||
        ::inet_pton(AF_INET6, dst.c_str(), &d) != 1) {
      return bad("a v1 header with a bad IPv6 address");
    }
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(sport);
    h.source.set(reinterpret_cast<sockaddr*>(a), sizeof *a);
  }
  h.has_source = true;
  return h;
}

ProxyHeader parse_v2(std::string_view bytes) {
  if (bytes.size() < 16) return {};
  const auto ver_cmd = static_cast<uint8_t>(bytes[12]);
  const auto fam = static_cast<uint8_t>(bytes[13]);
  const std::size_t len = static_cast<std::size_t>(static_cast<uint8_t>(bytes[14])) << 8 |
                          static_cast<uint8_t>(bytes[15]);
  if ((ver_cmd >> 4) != 2) return bad("a v2 header of another version");
  if ((ver_cmd & 0xf) > 1) return bad("a v2 header with an unknown command");
  if (16 + len > kMaxProxyHeader) return bad("a v2 header longer than 1024 bytes");
  if (bytes.size() < 16 + len) return {};
  ProxyHeader h;
  h.status = ProxyHeader::Status::done;
  h.length = 16 + len;
  if ((ver_cmd & 0xf) == 0) return h;  // LOCAL: the balancer's own connection
  const uint8_t af = fam >> 4;
  const uint8_t proto = fam & 0xf;
  if (af > 3 || proto > 2) return bad("a v2 header with an unknown address family");
  const char* body = bytes.data() + 16;
  if (af == 1 && proto != 0) {  // IPv4: src, dst, sport, dport
    if (len < 12) return bad("a v2 IPv4 header too short for its addresses");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    std::memcpy(&a.sin_addr, body, 4);
    std::memcpy(&a.sin_port, body + 8, 2);
    h.source.set(reinterpret_cast<sockaddr*>(&a), sizeof a);
    h.has_source = true;
  } else if (af == 2 && proto != 0) {  // IPv6
    if (len < 36) return bad("a v2 IPv6 header too short for its addresses");
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    std::memcpy(&a.sin6_addr, body, 16);
    std::memcpy(&a.sin6_port, body + 32, 2);
    h.source.set(reinterpret_cast<sockaddr*>(&a), sizeof a);
    h.has_source = true;
  }
  // UNSPEC and UNIX: the connection's own addresses stand. TLVs after the addresses: skipped.
  return h;
}

}  // namespace

ProxyHeader parse_proxy_header(std::string_view bytes) {
  if (bytes.empty()) return {};
  if (begins(bytes, kV1)) {
    return bytes.size() < kV1.size() ? ProxyHeader{} : parse_v1(bytes);
  }
  if (begins(bytes, kV2)) {
    return bytes.size() < kV2.size() ? ProxyHeader{} : parse_v2(bytes);
  }
  return bad("no PROXY protocol header");
}

}  // namespace tcpd
