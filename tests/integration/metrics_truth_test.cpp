// The gauges and histograms against what the test did: each one true at every moment, including
// while sessions are handed from worker to worker and while the server drains.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "net.hpp"

using namespace testing_support;
using Clock = std::chrono::steady_clock;

namespace {

// Samples the server's gauges every millisecond on its own thread until destroyed.
class GaugeWatch {
 public:
  explicit GaugeWatch(tcpd::Server& s)
      : thread_([this, &s] {
          while (!stop_.load()) {
            const tcpd::Gauges g = s.gauges();
            max_depth_ = std::max<uint64_t>(max_depth_, g.queue_depth);
            max_handed_on_ = std::max<uint64_t>(max_handed_on_, g.queue_handed_on);
            max_busy_ = std::max<uint64_t>(max_busy_, g.workers_busy);
            std::this_thread::sleep_for(1ms);
          }
        }) {}
  ~GaugeWatch() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t max_depth() const { return max_depth_; }
  uint64_t max_handed_on() const { return max_handed_on_; }
  uint64_t max_busy() const { return max_busy_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> max_depth_{0}, max_handed_on_{0}, max_busy_{0};
  std::thread thread_;
};

}  // namespace

// Sessions handed on to the queue after they were accepted long ago: their queue wait is the
// time since that hand-off, never since the accept.
TEST(MetricsTruth, QueueWaitIsMeasuredFromEachHandOff) {
  auto cfg = test_config();
  cfg.workers = 2;
  cfg.delay = 20ms;
  InProcessServer srv(cfg);
  std::atomic<long> worst_us{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&] {
      Client c = Client::connect(srv.port());
      const auto end = Clock::now() + 2500ms;
      while (Clock::now() < end) {
        const auto start = Clock::now();
        if (!c.send("q\n") || !c.line(5s)) return;
        const long us =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
        long seen = worst_us.load();
        while (us > seen && !worst_us.compare_exchange_weak(seen, us)) {
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  const auto snap = srv.server().stats();
  ASSERT_GT(snap.queue_wait.count, 16U);
  // No client waited a second for any reply, so no queue wait may be a second or more.
  ASSERT_LT(worst_us.load(), 1000000);
  uint64_t at_least_a_second = 0;
  for (std::size_t i = 0; i < tcpd::kLatencyBounds.size() + 1; ++i) {
    if (i >= tcpd::kLatencyBounds.size() || tcpd::kLatencyBounds[i] > 1.0) {
      at_least_a_second += snap.queue_wait.buckets[i];
    }
  }
  EXPECT_EQ(at_least_a_second, 0U);
  EXPECT_LT(snap.queue_wait.sum_seconds / static_cast<double>(snap.queue_wait.count), 1.0);
}

// The queue's depth counts what its bound counts: sessions handed on from a worker's batch are
// shown on their own, and the depth never exceeds the capacity.
TEST(MetricsTruth, QueueDepthNeverExceedsItsCapacity) {
  auto cfg = test_config();
  cfg.workers = 1;
  cfg.queue = 1;
  cfg.delay = 100ms;
  InProcessServer srv(cfg);
  std::vector<Client> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(Client::connect(srv.port()));
    ASSERT_TRUE(clients.back().send("a\n"));
    ASSERT_TRUE(clients.back().line());
  }
  GaugeWatch watch(srv.server());
  // The first keeps the one worker asleep; the others' requests pile up as one batch.
  ASSERT_TRUE(clients[0].send("b\n"));
  std::this_thread::sleep_for(30ms);
  for (int i = 1; i < 6; ++i) ASSERT_TRUE(clients[i].send("b\n"));
  for (auto& c : clients) EXPECT_TRUE(c.line(5s));
  watch.stop();
  EXPECT_LE(watch.max_depth(), cfg.queue);
  EXPECT_GT(watch.max_handed_on(), 0U);  // the batch was handed on: the case under test
}

// Busy workers are those serving a session: during a drain with one request in flight that is
// one, and workers that have left are not busy.
TEST(MetricsTruth, WorkersBusyCountsWorkersServingEvenDuringADrain) {
  auto cfg = test_config();
  cfg.workers = 4;
  cfg.delay = 600ms;
  cfg.drain_timeout = 3s;
  InProcessServer srv(cfg);
  EXPECT_EQ(srv.server().gauges().workers_busy, 0U);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("slow\n"));
  ASSERT_TRUE(eventually([&] { return srv.server().gauges().workers_busy == 1; }));
  GaugeWatch watch(srv.server());
  srv.server().stop();  // the drain begins; the request in flight is finished
  EXPECT_EQ(c.line(5s), "Hello from the server!\n");
  EXPECT_TRUE(eventually([&] { return srv.server().gauges().workers_busy == 0; }));
  srv.stop();
  watch.stop();
  EXPECT_EQ(watch.max_busy(), 1U);
  EXPECT_EQ(srv.server().gauges().workers_busy, 0U);
}
