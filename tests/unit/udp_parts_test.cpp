// The UDP mode's parts that need no socket: the abuse rules, the per-source rate limit, and
// tcpc's stamps and sequence window.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>

#include "udp_guard.hpp"
#include "udp_payload.hpp"

using tcpd::SeqWindow;
using tcpd::SourceKey;
using tcpd::SourceRateLimiter;
using Clock = tcpd::Clock;
using namespace std::chrono_literals;

namespace {

SourceKey v4(uint32_t host_order) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(host_order);
  return tcpd::source_key(reinterpret_cast<sockaddr*>(&a));
}

}  // namespace

TEST(ReflectionPorts, ServicesThatAnswerDatagramsAndPortZero) {
  for (uint16_t p : {0, 7, 13, 17, 19, 37, 53, 123, 1900, 11211}) {
    EXPECT_TRUE(tcpd::reflection_port(p)) << p;
  }
  for (uint16_t p : {1, 8, 1024, 12345, 40000, 65535}) EXPECT_FALSE(tcpd::reflection_port(p)) << p;
}

TEST(SourceKeys, IPv4AndItsMappedIPv6FormAreOneSource) {
  sockaddr_in6 mapped{};
  mapped.sin6_family = AF_INET6;
  ASSERT_EQ(::inet_pton(AF_INET6, "::ffff:192.0.2.1", &mapped.sin6_addr), 1);
  EXPECT_EQ(tcpd::source_key(reinterpret_cast<sockaddr*>(&mapped)), v4(0xC0000201));
  EXPECT_NE(v4(0xC0000201), v4(0xC0000202));
}

TEST(SourceRate, ASourceGetsItsRateAndRefillsOverTime) {
  SourceRateLimiter limit(10, 1024);
  const auto t0 = Clock::now();
  int allowed = 0;
  for (int i = 0; i < 50; ++i) allowed += limit.allow(v4(1), t0) ? 1 : 0;
  EXPECT_EQ(allowed, 10);
  EXPECT_FALSE(limit.allow(v4(1), t0 + 50ms));
  EXPECT_TRUE(limit.allow(v4(1), t0 + 150ms));  // a tenth of a second buys one
  // A second's idle refills one second's worth, never more.
  allowed = 0;
  for (int i = 0; i < 50; ++i) allowed += limit.allow(v4(1), t0 + 10s) ? 1 : 0;
  EXPECT_EQ(allowed, 10);
  EXPECT_TRUE(limit.allow(v4(2), t0));  // another source, its own budget
}

TEST(SourceRate, TheTableIsBoundedAndForgetsTheLeastRecentlySeen) {
  SourceRateLimiter limit(1, 16 * 4);  // 4 per shard
  const auto t0 = Clock::now();
  for (uint32_t i = 0; i < 100000; ++i) limit.allow(v4(i), t0);
  EXPECT_LE(limit.tracked(), 64u);
  EXPECT_GT(limit.tracked(), 16u);
  // A source seen again recently is remembered: its spent budget holds.
  SourceRateLimiter small(1, 16 * 2);
  EXPECT_TRUE(small.allow(v4(7), t0));
  for (uint32_t i = 100; i < 110; ++i) {
    small.allow(v4(i), t0);
    EXPECT_FALSE(small.allow(v4(7), t0)) << i;  // touched each round: never the oldest
  }
}

TEST(UdpStamp, RoundTripsAndAnythingElseIsNotAStamp) {
  std::string d(64, 'x');
  tcpd::UdpStamp s{7, 123456789, 111, 222};
  s.write(d.data());
  auto back = tcpd::UdpStamp::read(d);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->socket, 7u);
  EXPECT_EQ(back->seq, 123456789u);
  EXPECT_EQ(back->due_ns, 111);
  EXPECT_EQ(back->sent_ns, 222);
  EXPECT_FALSE(tcpd::UdpStamp::read("Hello from the server!").has_value());
  EXPECT_FALSE(tcpd::UdpStamp::read(d.substr(0, tcpd::UdpStamp::kSize - 1)).has_value());
}

TEST(SeqWindow, TellsInOrderReorderedAndDuplicates) {
  using A = SeqWindow::Arrival;
  SeqWindow w;
  EXPECT_EQ(w.arrive(0), A::in_order);
  EXPECT_EQ(w.arrive(2), A::in_order);
  EXPECT_EQ(w.arrive(1), A::reordered);
  EXPECT_EQ(w.arrive(1), A::duplicate);
  EXPECT_EQ(w.arrive(2), A::duplicate);
  EXPECT_EQ(w.arrive(3), A::in_order);
  // Far ahead: the numbers skipped over are free again, and what fell out of the window is
  // neither a duplicate nor in order.
  EXPECT_EQ(w.arrive(3 + SeqWindow::kWindow), A::in_order);
  EXPECT_EQ(w.arrive(4), A::reordered);
  EXPECT_EQ(w.arrive(2), A::too_old);
  // A number whose bit was set a whole window ago is not taken for a duplicate.
  SeqWindow v;
  EXPECT_EQ(v.arrive(5), A::in_order);
  EXPECT_EQ(v.arrive(5 + SeqWindow::kWindow + 1), A::in_order);
  EXPECT_EQ(v.arrive(5 + SeqWindow::kWindow), A::reordered);
}
