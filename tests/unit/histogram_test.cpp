#include "histogram.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

using tcpd::Histogram;

TEST(Histogram, ExactBelow1024) {
  Histogram h;
  for (uint64_t v = 1; v <= 1000; ++v) h.record(v);
  EXPECT_EQ(h.count(), 1000u);
  EXPECT_EQ(h.percentile(0.5), 500u);
  EXPECT_EQ(h.percentile(0.99), 990u);
  EXPECT_EQ(h.percentile(1.0), 1000u);
  EXPECT_EQ(h.max(), 1000u);
}

TEST(Histogram, BucketsCoverEveryValueWithinTwoTenthsOfAPercent) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = rng() >> (rng() % 40 + 24);
    const std::size_t idx = Histogram::index_of(v);
    ASSERT_LE(Histogram::lowest_of(idx), v);
    ASSERT_GE(Histogram::highest_of(idx), v);
    const double width =
        static_cast<double>(Histogram::highest_of(idx) - Histogram::lowest_of(idx));
    ASSERT_LE(width, static_cast<double>(v) * 0.002 + 1) << v;
  }
}

TEST(Histogram, PercentilesOfAKnownDistribution) {
  Histogram h;
  for (uint64_t v = 1; v <= 100000; ++v) h.record(v);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.50)), 50000, 50000 * 0.002);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.90)), 90000, 90000 * 0.002);
  EXPECT_NEAR(static_cast<double>(h.percentile(0.999)), 99900, 99900 * 0.002);
  EXPECT_EQ(h.max(), 100000u);
}

TEST(Histogram, MergeAddsCounts) {
  Histogram a, b;
  a.record(10);
  b.record(20);
  b.record(5000000);
  a.merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.max(), 5000000u);
  EXPECT_EQ(a.percentile(0.34), 20u);
}

TEST(Histogram, EmptyIsZero) {
  Histogram h;
  EXPECT_EQ(h.percentile(0.5), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(Histogram, MinMeanAndMaxSurviveAMerge) {
  tcpd::Histogram a, b;
  EXPECT_EQ(a.min(), 0u);
  EXPECT_EQ(a.mean(), 0.0);
  for (uint64_t v : {10, 20, 30}) a.record(v);
  for (uint64_t v : {5, 2000}) b.record(v);
  a.merge(b);
  EXPECT_EQ(a.count(), 5u);
  EXPECT_EQ(a.min(), 5u);
  EXPECT_EQ(a.max(), 2000u);
  EXPECT_DOUBLE_EQ(a.mean(), (10 + 20 + 30 + 5 + 2000) / 5.0);
}

TEST(Histogram, StandardDeviation) {
  tcpd::Histogram h;
  for (uint64_t v : {2, 4, 4, 4, 5, 5, 7, 9}) h.record(v);
  EXPECT_DOUBLE_EQ(h.mean(), 5.0);
  EXPECT_DOUBLE_EQ(h.stddev(), 2.0);
}

TEST(Histogram, PerThreadHistogramsMergeToTheSameDistributionAsOne) {
  // tcpc keeps one histogram per event loop and merges them at the end: the merged percentiles
  // must be those of one histogram that saw every sample.
  std::mt19937_64 rng(7);
  Histogram all;
  std::vector<Histogram> loops(3);
  for (int i = 0; i < 30000; ++i) {
    const uint64_t v = rng() % 2000000;
    all.record(v);
    loops[static_cast<std::size_t>(i) % loops.size()].record(v);
  }
  Histogram merged;
  for (const auto& h : loops) merged.merge(h);
  for (double q : {0.0, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    EXPECT_EQ(merged.percentile(q), all.percentile(q)) << q;
  }
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_DOUBLE_EQ(merged.mean(), all.mean());
}
