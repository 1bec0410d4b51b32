// The missed-rate warning names the likely cause from the run's own figures.
#include "report.hpp"

#include <gtest/gtest.h>

namespace {

tcpd::LoadResult missed_run(double client_cpu_s) {
  tcpd::LoadResult r;
  r.requests = r.ok = 700;  // 70% of 1000/s for 1 s, no failures
  r.seconds = 1.0;
  r.threads = 2;
  r.client_cpu_s = client_cpu_s;
  r.latency_uncorrected.emplace();
  for (int i = 0; i < 700; ++i) {
    r.latency.record(900);
    r.latency_uncorrected->record(100);  // 0.1 ms: latency does not explain the shortfall
  }
  return r;
}

}  // namespace

TEST(RateWarning, SaysTheClientIsSaturatedWhenItsCpuIsSpent) {
  tcpd::ClientConfig cfg;
  cfg.rate = 1000;
  cfg.concurrency = 100;
  const std::string w = tcpd::rate_warning(cfg, missed_run(1.9));
  EXPECT_NE(w.find("70% of the --rate 1000 target: the client is saturated"), std::string::npos)
      << w;
}

TEST(RateWarning, OtherwiseBlamesTheServerWithItsLatency) {
  tcpd::ClientConfig cfg;
  cfg.rate = 1000;
  cfg.concurrency = 100;
  const std::string w = tcpd::rate_warning(cfg, missed_run(0.2));
  EXPECT_NE(w.find("the server did not keep up (p99 from the actual send 0.1 ms)"),
            std::string::npos)
      << w;
}

TEST(RateWarning, SilentWhenTheTargetIsMet) {
  tcpd::ClientConfig cfg;
  cfg.rate = 700;
  EXPECT_EQ(tcpd::rate_warning(cfg, missed_run(0.2)), "");
}

namespace {

// A run that met its rate, `late` of its 1000 sends 3 ms behind the schedule.
tcpd::LoadResult met_run(int late) {
  tcpd::LoadResult r;
  r.requests = r.ok = 1000;
  r.seconds = 1.0;
  r.threads = 2;
  r.client_cpu_s = 0.1;
  r.latency_uncorrected.emplace();
  r.send_lateness.emplace();
  for (int i = 0; i < 1000; ++i) {
    const bool waited = i < late;
    r.send_lateness->record(waited ? 3000 : 0);
    r.latency.record(waited ? 3800 : 800);
    r.latency_uncorrected->record(800);
  }
  return r;
}

}  // namespace

TEST(ConcurrencyWarning, NamesTheWaitAndAConcurrencyWhenSendsQueued) {
  tcpd::ClientConfig cfg;
  cfg.rate = 1000;
  cfg.concurrency = 1;
  const std::string w = tcpd::concurrency_warning(cfg, met_run(100));
  EXPECT_NE(w.find("sends left late against the --rate 1000 schedule (p99 3.0 ms)"),
            std::string::npos)
      << w;
  EXPECT_NE(w.find("(p99 3.8 ms, against 0.8 ms from the actual send)"), std::string::npos) << w;
  // 1000/s at 0.8 ms is 0.8 requests in flight on average: four times that, rounded up.
  EXPECT_NE(w.find("Try --concurrency 4 or more (it is 1)"), std::string::npos) << w;
}

TEST(ConcurrencyWarning, SilentForAFewLateSendsOrAClosedLoop) {
  tcpd::ClientConfig cfg;
  cfg.rate = 1000;
  cfg.concurrency = 1;
  EXPECT_EQ(tcpd::concurrency_warning(cfg, met_run(0)), "");
  EXPECT_EQ(tcpd::concurrency_warning(cfg, met_run(9)), "");  // the run's start, not a shortage
  cfg.rate = 0;
  EXPECT_EQ(tcpd::concurrency_warning(cfg, met_run(100)), "");
}
