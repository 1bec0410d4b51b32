// Thresholds: each passes and fails once, the exit status they give, and their JSON.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "summary_json.hpp"
#include "thresholds.hpp"

using tcpd::check_thresholds;
using tcpd::ClientConfig;
using tcpd::LoadResult;

namespace {

// 1,000 requests in 1 s: 990 at 2 ms, 10 at 50 ms (p99 2 ms, p99.9 50 ms), `failed` of them
// failed.
LoadResult run_of(uint64_t failed) {
  LoadResult r;
  r.requests = 1000;
  r.ok = 1000 - failed;
  r.seconds = 1.0;
  for (int i = 0; i < 990; ++i) r.latency.record(2000);
  for (int i = 0; i < 10; ++i) r.latency.record(50000);
  return r;
}

}  // namespace

TEST(Thresholds, EachHoldsAndIsViolated) {
  ClientConfig cfg;
  cfg.max_p99_ms = 3;
  cfg.max_p999_ms = 60;
  cfg.min_rps = 900;
  cfg.max_failed = 5;
  auto ts = check_thresholds(cfg, run_of(2));
  ASSERT_EQ(ts.size(), 4u);
  for (const auto& t : ts) EXPECT_TRUE(t.held) << t.name;
  EXPECT_EQ(tcpd::load_exit_status(cfg, run_of(2), ts), 0);  // 2 failures allowed by --max-failed
  EXPECT_EQ(tcpd::threshold_violations(ts), "");

  cfg.max_p99_ms = 1;
  cfg.max_p999_ms = 40;
  cfg.min_rps = 999;
  cfg.max_failed = 1;
  ts = check_thresholds(cfg, run_of(2));
  for (const auto& t : ts) EXPECT_FALSE(t.held) << t.name;
  EXPECT_EQ(tcpd::load_exit_status(cfg, run_of(2), ts), 3);
  const std::string lines = tcpd::threshold_violations(ts);
  // The histogram keeps three significant digits: 2 ms reads back as 2.001.
  EXPECT_NE(lines.find("tcpc: threshold --max-p99-ms 1 violated: p99 was 2.0"), std::string::npos)
      << lines;
  EXPECT_NE(lines.find("--max-p999-ms 40 violated: p99.9 was 50 ms"), std::string::npos) << lines;
  EXPECT_NE(lines.find("--min-rps 999 violated: the rate was 998 req/s"), std::string::npos)
      << lines;
  EXPECT_NE(lines.find("--max-failed 1 violated: failed requests was 2"), std::string::npos)
      << lines;
}

TEST(Thresholds, NoneAskedKeepsTheOldExitStatuses) {
  ClientConfig cfg;
  EXPECT_TRUE(check_thresholds(cfg, run_of(0)).empty());
  EXPECT_EQ(tcpd::load_exit_status(cfg, run_of(0), {}), 0);
  EXPECT_EQ(tcpd::load_exit_status(cfg, run_of(1), {}), 1);
  EXPECT_TRUE(nlohmann::json::parse(tcpd::load_summary_json(cfg, run_of(0)))["thresholds"].empty());
}

TEST(Thresholds, ALatencyWithNothingMeasuredFailsAndTheJsonSaysNull) {
  ClientConfig cfg;
  cfg.max_p99_ms = 100;
  LoadResult none;
  none.requests = 10;
  none.seconds = 1;
  const auto ts = check_thresholds(cfg, none);
  ASSERT_EQ(ts.size(), 1u);
  EXPECT_FALSE(ts[0].held);
  auto j = nlohmann::json::parse(tcpd::load_summary_json(cfg, none));
  EXPECT_EQ(j["thresholds"][0]["name"], "max_p99_ms");
  EXPECT_EQ(j["thresholds"][0]["limit"], 100);
  EXPECT_TRUE(j["thresholds"][0]["actual"].is_null());
  EXPECT_EQ(j["thresholds"][0]["held"], false);
  EXPECT_NE(tcpd::threshold_violations(ts).find("not measured"), std::string::npos);
}
