// The PROXY protocol header parser, from the specification's examples (HAProxy's
// doc/proxy-protocol.txt), and the CIDR sets the allow and deny lists use.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "cidr.hpp"
#include "proxy_header.hpp"

using tcpd::CidrSet;
using tcpd::parse_proxy_header;
using tcpd::ProxyHeader;
using Status = tcpd::ProxyHeader::Status;

namespace {

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string be16(unsigned v) {
  return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)};
}

std::string v2(unsigned char ver_cmd, unsigned char fam, const std::string& body) {
  return kSig + static_cast<char>(ver_cmd) + static_cast<char>(fam) + be16(body.size()) + body;
}

std::string v4_body(const char* src, const char* dst, unsigned sport, unsigned dport) {
  std::string b(8, '\0');
  ::inet_pton(AF_INET, src, b.data());
  ::inet_pton(AF_INET, dst, b.data() + 4);
  return b + be16(sport) + be16(dport);
}

std::string v6_body(const char* src, const char* dst, unsigned sport, unsigned dport) {
  std::string b(32, '\0');
  ::inet_pton(AF_INET6, src, b.data());
  ::inet_pton(AF_INET6, dst, b.data() + 16);
  return b + be16(sport) + be16(dport);
}

// Every strict prefix of a valid header must ask for more, never fail.
void every_prefix_needs_more(const std::string& header) {
  for (std::size_t n = 0; n < header.size(); ++n) {
    EXPECT_EQ(parse_proxy_header(header.substr(0, n)).status, Status::need_more)
        << n << " of " << header.size();
  }
}

tcpd::IpKey key(const char* address) {
  sockaddr_storage ss{};
  if (::inet_pton(AF_INET, address, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    ss.ss_family = AF_INET;
  } else {
    ::inet_pton(AF_INET6, address, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr);
    ss.ss_family = AF_INET6;
  }
  return tcpd::ip_key(reinterpret_cast<sockaddr*>(&ss));
}

}  // namespace

TEST(ProxyV1, Tcp4AndTcp6GiveTheClient) {
  const std::string h4 = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
  ProxyHeader p = parse_proxy_header(h4 + "GET / HTTP/1.1\r\n");
  ASSERT_EQ(p.status, Status::done);
  EXPECT_EQ(p.length, h4.size());
  ASSERT_TRUE(p.has_source);
  EXPECT_EQ(p.source.str(), "192.168.0.1:56324");
  every_prefix_needs_more(h4);
  const std::string h6 = "PROXY TCP6 2001:db8::1 ::1 65535 80\r\n";
  p = parse_proxy_header(h6);
  ASSERT_EQ(p.status, Status::done);
  EXPECT_EQ(p.source.str(), "[2001:db8::1]:65535");
  every_prefix_needs_more(h6);
}

TEST(ProxyV1, UnknownKeepsTheConnectionsOwnAddress) {
  for (const std::string h : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"}) {
    ProxyHeader p = parse_proxy_header(h + "x");
    ASSERT_EQ(p.status, Status::done) << h;
    EXPECT_EQ(p.length, h.size());
    EXPECT_FALSE(p.has_source);
  }
}

TEST(ProxyV1, MalformedAndOversizedHeadersAreBad) {
  for (const std::string h : {
           "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",    // a field too many
           "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",        // a field short
           "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",      // no such protocol
           "PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",    // not an address
           "PROXY TCP4 ::1 ::1 1 2\r\n",              // the wrong family
           "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",  // a port out of range
           "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",     // a leading zero
           "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",     // two spaces
           "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",     // a sign
       }) {
    EXPECT_EQ(parse_proxy_header(h).status, Status::bad) << h;
  }
  const std::string endless = "PROXY TCP4 " + std::string(200, '1');
  EXPECT_EQ(parse_proxy_header(endless).status, Status::bad);
  EXPECT_EQ(parse_proxy_header(endless.substr(0, 106)).status, Status::need_more);
  EXPECT_EQ(parse_proxy_header(endless.substr(0, 107)).status, Status::bad);
}

TEST(ProxyV2, Ipv4AndIpv6WithTlvsSkipped) {
  const std::string tlv = std::string("\x01", 1) + be16(2) + "h2" + "\x04" + be16(0);
  const std::string h4 = v2(0x21, 0x11, v4_body("203.0.113.9", "10.0.0.1", 40000, 12345) + tlv);
  ProxyHeader p = parse_proxy_header(h4 + "hello\n");
  ASSERT_EQ(p.status, Status::done);
  EXPECT_EQ(p.length, h4.size());
  EXPECT_EQ(p.source.str(), "203.0.113.9:40000");
  every_prefix_needs_more(h4);
  const std::string h6 = v2(0x21, 0x21, v6_body("2001:db8::5", "2001:db8::1", 1, 2));
  p = parse_proxy_header(h6);
  ASSERT_EQ(p.status, Status::done);
  EXPECT_EQ(p.source.str(), "[2001:db8::5]:1");
  every_prefix_needs_more(h6);
  // UDP over IPv4 carries the same addresses.
  p = parse_proxy_header(v2(0x21, 0x12, v4_body("198.51.100.2", "10.0.0.1", 53, 53)));
  EXPECT_EQ(p.source.str(), "198.51.100.2:53");
}

TEST(ProxyV2, LocalUnspecAndUnixKeepTheConnectionsOwnAddress) {
  for (const std::string& h :
       {v2(0x20, 0x00, ""), v2(0x20, 0x11, v4_body("1.2.3.4", "5.6.7.8", 1, 2)), v2(0x21, 0x00, ""),
        v2(0x21, 0x31, std::string(216, 'u'))}) {
    ProxyHeader p = parse_proxy_header(h);
    ASSERT_EQ(p.status, Status::done);
    EXPECT_EQ(p.length, h.size());
    EXPECT_FALSE(p.has_source);
  }
}

TEST(ProxyV2, MalformedTruncatedAndOversizedAreBad) {
  EXPECT_EQ(parse_proxy_header(v2(0x11, 0x11, v4_body("1.2.3.4", "5.6.7.8", 1, 2))).status,
            Status::bad);  // version 1 in a v2 header
  EXPECT_EQ(parse_proxy_header(v2(0x22, 0x11, v4_body("1.2.3.4", "5.6.7.8", 1, 2))).status,
            Status::bad);  // command 2
  EXPECT_EQ(parse_proxy_header(v2(0x21, 0x41, std::string(12, 'x'))).status, Status::bad);
  EXPECT_EQ(parse_proxy_header(v2(0x21, 0x11, std::string(11, 'x'))).status, Status::bad);
  EXPECT_EQ(parse_proxy_header(v2(0x21, 0x21, std::string(35, 'x'))).status, Status::bad);
  // Longer than tcpd takes: refused from its 16 bytes, before the rest is buffered.
  const std::string big = v2(0x21, 0x11, std::string(2000, 'x'));
  EXPECT_EQ(parse_proxy_header(big.substr(0, 16)).status, Status::bad);
}

TEST(ProxyHeaders, AnythingElseIsNotAHeader) {
  EXPECT_EQ(parse_proxy_header("").status, Status::need_more);
  EXPECT_EQ(parse_proxy_header("hello\n").status, Status::bad);
  EXPECT_EQ(parse_proxy_header("PROX").status, Status::need_more);
  EXPECT_EQ(parse_proxy_header("PROXX").status, Status::bad);
  EXPECT_EQ(parse_proxy_header(kSig.substr(0, 5)).status, Status::need_more);
  EXPECT_EQ(parse_proxy_header("\r\n\r\nX").status, Status::bad);
}

TEST(Cidr, ListsParseAndBadItemsAreNamed) {
  CidrSet s;
  EXPECT_EQ(s.add_list("10.0.0.0/8,192.0.2.1,2001:db8::/32"), "");
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.add_list("10.0.0.0/33"), "10.0.0.0/33: the prefix length must be 0 to 32");
  EXPECT_EQ(s.add_list("::/129"), "::/129: the prefix length must be 0 to 128");
  EXPECT_EQ(s.add_list("300.1.1.1"), "300.1.1.1: not an IPv4 or IPv6 address");
  EXPECT_EQ(s.add_list("10.0.0.0/"), "10.0.0.0/: the prefix length must be 0 to 32");
  EXPECT_EQ(s.add_list(""), ": not an IPv4 or IPv6 address");
}

TEST(Cidr, MatchesIncludingIpv4MappedPeers) {
  CidrSet s;
  ASSERT_EQ(s.add_list("10.0.0.0/8,192.0.2.1,2001:db8::/32"), "");
  EXPECT_TRUE(s.contains(key("10.200.3.4")));
  EXPECT_TRUE(s.contains(key("::ffff:10.200.3.4")));  // a dual-stack listener's IPv4 peer
  EXPECT_FALSE(s.contains(key("11.0.0.1")));
  EXPECT_TRUE(s.contains(key("192.0.2.1")));
  EXPECT_FALSE(s.contains(key("192.0.2.2")));
  EXPECT_TRUE(s.contains(key("2001:db8:ffff::1")));
  EXPECT_FALSE(s.contains(key("2001:db9::1")));
  CidrSet everyone;
  ASSERT_EQ(everyone.add_list("0.0.0.0/0"), "");
  EXPECT_TRUE(everyone.contains(key("8.8.8.8")));
  EXPECT_FALSE(everyone.contains(key("2001:db8::1")));  // IPv4's /0 is not all of IPv6
}

TEST(Cidr, AThousandRulesAreLookedUpByPrefixLengthNotOneByOne) {
  CidrSet s;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(s.add_list("10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".0/24"),
              "");
  }
  EXPECT_EQ(s.size(), 1000u);
  EXPECT_TRUE(s.contains(key("10.3.249.77")));
  EXPECT_FALSE(s.contains(key("10.4.0.1")));
}
