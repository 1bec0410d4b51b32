// The latency histograms' buckets: the low end is fine enough for loopback requests.
#include "stats.hpp"

#include <gtest/gtest.h>

#include <chrono>

using namespace std::chrono_literals;

TEST(Histogram, LowBucketsSeparateMicroseconds) {
  tcpd::Histogram h;
  h.observe(3us);
  h.observe(7us);
  h.observe(20us);
  h.observe(40us);
  h.observe(20s);
  tcpd::HistogramSnapshot s;
  h.add_to(s);
  EXPECT_EQ(tcpd::kLatencyBounds.front(), 0.000005);
  EXPECT_EQ(s.buckets[0], 1U);                            // <= 5 µs
  EXPECT_EQ(s.buckets[1], 1U);                            // <= 10 µs
  EXPECT_EQ(s.buckets[2], 1U);                            // <= 25 µs
  EXPECT_EQ(s.buckets[3], 1U);                            // <= 50 µs
  EXPECT_EQ(s.buckets[tcpd::kLatencyBounds.size()], 1U);  // +Inf
  EXPECT_EQ(s.count, 5U);
}
