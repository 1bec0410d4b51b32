#include "worker_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

#include "queue_worker.hpp"
#include "work_queue.hpp"

TEST(WorkerPool, RunsEachIndexOnItsOwnThreadAndJoins) {
  std::mutex mu;
  std::set<unsigned> indices;
  std::set<std::thread::id> threads;
  {
    tcpd::WorkerPool pool;
    pool.start(
        8,
        [&](unsigned i) {
          std::lock_guard lock(mu);
          indices.insert(i);
          threads.insert(std::this_thread::get_id());
        },
        [] {});
    EXPECT_EQ(pool.size(), 8u);
    pool.join();
    EXPECT_EQ(pool.size(), 0u);
  }
  EXPECT_EQ(indices, (std::set<unsigned>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(threads.size(), 8u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST(WorkerPool, FixedPoolDrainsAQueueInParallel) {
  // The server's arrangement: N workers take items until the queue is finished.
  tcpd::WorkQueue<int> q(1000);
  std::atomic<int> done{0};
  std::atomic<int> running{0}, peak{0};
  tcpd::WorkerPool pool;
  pool.start(
      4,
      [&](unsigned) {
        while (auto item = tcpd::test::take(q)) {
          const int now = ++running;
          int p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          --running;
          ++done;
        }
      },
      [&] { q.finish(); });
  for (int i = 0; i < 40; ++i) {
    int v = i;
    ASSERT_TRUE(q.try_push(v));
  }
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done < 40 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  q.finish();
  pool.join();
  EXPECT_EQ(done, 40);
  EXPECT_GT(peak, 1);  // items were served concurrently
  EXPECT_LE(peak, 4);  // never by more threads than the pool has
}

namespace {

// A worker body whose copy fails like pthread_create at the limit: std::thread copies its
// callable before it creates the thread, so the Nth copy stands in for the Nth thread.
struct FailsAfter {
  std::shared_ptr<std::atomic<int>> copies_left;
  std::function<void(unsigned)> body;
  FailsAfter(int n, std::function<void(unsigned)> b)
      : copies_left(std::make_shared<std::atomic<int>>(n)), body(std::move(b)) {}
  FailsAfter(FailsAfter&&) = default;
  FailsAfter(const FailsAfter& o) : copies_left(o.copies_left), body(o.body) {
    if (--*copies_left < 0) {
      throw std::system_error(EAGAIN, std::generic_category(), "pthread_create");
    }
  }
  void operator()(unsigned i) const { body(i); }
};

}  // namespace

TEST(WorkerPool, StartThatCannotCreateEveryThreadReleasesJoinsAndNamesTheCause) {
  // Regression: the workers already started blocked in pop() forever, so the failed start
  // hung the server instead of reporting the error.
  tcpd::WorkQueue<int> q(10);
  std::atomic<int> started{0}, finished{0};
  tcpd::WorkerPool pool;
  FailsAfter body(5, [&](unsigned) {
    ++started;
    while (tcpd::test::take(q)) {
    }
    ++finished;
  });
  try {
    pool.start(64, std::function<void(unsigned)>(std::move(body)), [&] { q.finish(); });
    FAIL() << "start must throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EAGAIN);
    EXPECT_EQ(std::string(e.what()), "cannot start 64 workers: Resource temporarily unavailable");
  }
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(started.load(), finished.load());  // every started thread returned and was joined
  EXPECT_GT(started.load(), 0);
}
