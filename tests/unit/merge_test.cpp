#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

#include "hlog.hpp"
#include "merge.hpp"
#include "msg_template.hpp"
#include "summary_json.hpp"

using tcpd::ClientConfig;
using tcpd::Histogram;
using tcpd::LoadResult;

namespace {

// A run of `n` successful requests with latencies drawn from a long-tailed distribution.
LoadResult run_of(uint64_t n, double scale_us, unsigned seed, double start_unix_s) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(0, 1.2);
  LoadResult r;
  r.targets.push_back({"127.0.0.1:12345"});
  for (uint64_t i = 0; i < n; ++i) {
    const auto us = static_cast<uint64_t>(scale_us * dist(rng));
    r.latency.record(us);
  }
  r.requests = r.ok = n;
  r.targets[0].requests = r.targets[0].ok = n;
  r.bytes_sent = r.bytes_received = n * 23;
  r.seconds = 2;
  r.threads = 2;
  r.window_start = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::duration<double>(start_unix_s)));
  return r;
}

}  // namespace

// Percentiles of merged results are those of one histogram holding every sample: not averages.
TEST(Merge, PercentilesAreThoseOfAllTheSamplesTogether) {
  ClientConfig cfg;
  cfg.concurrency = 4;
  const std::vector<LoadResult> runs = {run_of(20000, 80, 1, 1000.0), run_of(5000, 900, 2, 1000.5),
                                        run_of(70000, 30, 3, 1001.0)};
  Histogram all;
  std::vector<tcpd::RunText> texts;
  for (const auto& r : runs) {
    all.merge(r.latency);
    texts.push_back({"run", tcpd::load_summary_json(cfg, r)});
  }
  ClientConfig merged_cfg;
  const LoadResult m = tcpd::merge_runs(texts, merged_cfg);
  EXPECT_EQ(m.latency.count(), all.count());
  for (double q : {0.5, 0.9, 0.99, 0.999, 0.9999, 1.0}) {
    EXPECT_EQ(m.latency.percentile(q), all.percentile(q)) << q;
  }
  EXPECT_EQ(m.latency.min(), all.min());
  EXPECT_EQ(m.latency.max(), all.max());
  EXPECT_NEAR(m.latency.mean(), all.mean(), 1e-6 * all.mean());
  EXPECT_NEAR(m.latency.stddev(), all.stddev(), 1e-6 * all.stddev());
  // The averaged p99 would be far from the true one: this is what merging avoids.
  const double averaged = (runs[0].latency.percentile(0.99) + runs[1].latency.percentile(0.99) +
                           runs[2].latency.percentile(0.99)) /
                          3.0;
  EXPECT_GT(std::abs(averaged - static_cast<double>(all.percentile(0.99))), 100);
  EXPECT_EQ(m.ok, 95000u);
  EXPECT_EQ(m.bytes_sent, 95000u * 23);
  EXPECT_EQ(m.runs, 3u);
  EXPECT_EQ(m.threads, 6u);
  EXPECT_EQ(merged_cfg.concurrency, 12u);
  ASSERT_EQ(m.targets.size(), 1u);
  EXPECT_EQ(m.targets[0].ok, 95000u);
  // Windows [1000, 1002), [1000.5, 1002.5), [1001, 1003): covered from 1000 to 1003.
  EXPECT_NEAR(m.seconds, 3.0, 1e-3);
}

TEST(Merge, RatesAreOverTheUnionOfTheWindows) {
  EXPECT_DOUBLE_EQ(tcpd::union_seconds({{0, 2}, {1, 3}}), 3);
  EXPECT_DOUBLE_EQ(tcpd::union_seconds({{0, 1}, {5, 6}}), 2);  // a gap is not counted
  EXPECT_DOUBLE_EQ(tcpd::union_seconds({{4, 6}, {0, 10}}), 10);
  EXPECT_DOUBLE_EQ(tcpd::union_seconds({}), 0);
}

TEST(Merge, AMergeOfMergesEqualsOneMerge) {
  ClientConfig cfg;
  const auto a = tcpd::load_summary_json(cfg, run_of(1000, 50, 4, 10));
  const auto b = tcpd::load_summary_json(cfg, run_of(3000, 70, 5, 10));
  const auto c = tcpd::load_summary_json(cfg, run_of(2000, 300, 6, 11));
  ClientConfig c1, c2, c3;
  const LoadResult ab = tcpd::merge_runs({{"a", a}, {"b", b}}, c1);
  const LoadResult abc = tcpd::merge_runs({{"ab", tcpd::load_summary_json(c1, ab)}, {"c", c}}, c2);
  const LoadResult flat = tcpd::merge_runs({{"a", a}, {"b", b}, {"c", c}}, c3);
  EXPECT_EQ(abc.runs, 3u);
  EXPECT_EQ(abc.ok, flat.ok);
  for (double q : {0.5, 0.99, 0.999})
    EXPECT_EQ(abc.latency.percentile(q), flat.latency.percentile(q));
}

TEST(Merge, NamesTheRunThatIsNotAResult) {
  ClientConfig cfg;
  EXPECT_THROW(
      {
        try {
          tcpd::merge_runs({{"x.json:3", "{\"schema\":2}"}}, cfg);
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("x.json:3: schema 2"), std::string::npos)
              << e.what();
          throw;
        }
      },
      std::runtime_error);
  EXPECT_THROW(tcpd::merge_runs({{"y", "not json"}}, cfg), std::runtime_error);
  EXPECT_THROW(tcpd::merge_runs({}, cfg), std::runtime_error);
}

TEST(MessageTemplate, FillsPlaceholdersAndKeepsEscapedBraces) {
  auto t = tcpd::MessageTemplate::parse("c={conn} s={seq} r={rand:5} {{x}}");
  ASSERT_TRUE(std::holds_alternative<tcpd::MessageTemplate>(t));
  std::string out;
  uint64_t rng = 1;
  std::get<tcpd::MessageTemplate>(t).render(7, 42, rng, out);
  EXPECT_EQ(out.substr(0, 11), "c=7 s=42 r=");
  EXPECT_EQ(out.size(), std::string("c=7 s=42 r=12345 {x}").size());
  EXPECT_EQ(out.substr(out.size() - 4), " {x}");
  EXPECT_TRUE(std::get<tcpd::MessageTemplate>(tcpd::MessageTemplate::parse("plain")).literal());
  EXPECT_FALSE(std::get<tcpd::MessageTemplate>(tcpd::MessageTemplate::parse("{seq}")).literal());
  for (const char* bad : {"{x}", "{rand:0}", "{rand:99999999}", "{rand:}", "a{", "a}"}) {
    EXPECT_TRUE(std::holds_alternative<std::string>(tcpd::MessageTemplate::parse(bad))) << bad;
  }
}

TEST(Hlog, Base64AndTheHdrHeaderAreAsTheFormatSays) {
  EXPECT_EQ(tcpd::base64(""), "");
  EXPECT_EQ(tcpd::base64("f"), "Zg==");
  EXPECT_EQ(tcpd::base64("fo"), "Zm8=");
  EXPECT_EQ(tcpd::base64("foo"), "Zm9v");
  Histogram h;
  h.record(100);
  const std::string enc = tcpd::hdr_compressed_v2(h);
  // The compressed V2 cookie, then a zlib stream (0x78 0x01): "HISTFAAA..." in base64.
  EXPECT_EQ(tcpd::base64(enc).substr(0, 8), "HISTFAAA");
  EXPECT_EQ(static_cast<unsigned char>(enc[8]), 0x78);
  const std::string line = tcpd::hlog_line(0, 1, h);
  EXPECT_EQ(line.substr(0, 18), "0.000,1.000,0.100,");
}

namespace {

tcpd::UdpLoadResult udp_run_of(uint64_t sent, uint64_t received, double jitter, unsigned seed,
                               double start_unix_s) {
  tcpd::UdpLoadResult r;
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(3, 0.8);
  for (uint64_t i = 0; i < received; ++i) r.latency.record(static_cast<uint64_t>(dist(rng)));
  r.latency_uncorrected = r.latency;
  r.sent = sent;
  r.received = r.stamped = received;
  r.jitter_us = jitter;
  r.seconds = 1;
  r.threads = 1;
  r.started_at = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::duration<double>(start_unix_s)));
  return r;
}

}  // namespace

TEST(Merge, UdpResultsAddUpAndTheirJitterIsWeightedByReplies) {
  ClientConfig cfg;
  cfg.udp = true;
  cfg.host = "127.0.0.1";
  cfg.concurrency = 2;
  const auto a = udp_run_of(1000, 990, 10, 7, 50);
  const auto b = udp_run_of(3000, 3000, 30, 8, 50.5);
  Histogram all = a.latency;
  all.merge(b.latency);
  ClientConfig merged_cfg;
  const tcpd::UdpLoadResult m = tcpd::merge_udp_runs(
      {{"a", tcpd::udp_summary_json(cfg, a)}, {"b", tcpd::udp_summary_json(cfg, b)}}, merged_cfg);
  EXPECT_EQ(m.sent, 4000u);
  EXPECT_EQ(m.received, 3990u);
  EXPECT_EQ(m.lost(), 10u);
  EXPECT_EQ(m.runs, 2u);
  EXPECT_EQ(merged_cfg.concurrency, 4u);
  EXPECT_TRUE(merged_cfg.udp);
  EXPECT_NEAR(m.jitter_us, (10.0 * 990 + 30.0 * 3000) / 3990, 0.1);
  EXPECT_NEAR(m.seconds, 1.5, 1e-3);
  for (double q : {0.5, 0.99, 0.999}) EXPECT_EQ(m.latency.percentile(q), all.percentile(q));
  // A TCP result among UDP ones is refused, naming it.
  ClientConfig tcp_cfg;
  EXPECT_THROW(tcpd::merge_udp_runs({{"a", tcpd::udp_summary_json(cfg, a)},
                                     {"t", tcpd::load_summary_json(tcp_cfg, LoadResult{})}},
                                    merged_cfg),
               std::runtime_error);
}
