#include "worker_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "work_queue.hpp"

TEST(WorkerPool, RunsEachIndexOnItsOwnThreadAndJoins) {
  std::mutex mu;
  std::set<unsigned> indices;
  std::set<std::thread::id> threads;
  {
    tcpd::WorkerPool pool;
    pool.start(8, [&](unsigned i) {
      std::lock_guard lock(mu);
      indices.insert(i);
      threads.insert(std::this_thread::get_id());
    });
    EXPECT_EQ(pool.size(), 8u);
    pool.join();
    EXPECT_EQ(pool.size(), 0u);
  }
  EXPECT_EQ(indices, (std::set<unsigned>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(threads.size(), 8u);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST(WorkerPool, FixedPoolDrainsAQueueInParallel) {
  // The server's arrangement: N workers pop until the queue is closed and empty.
  tcpd::WorkQueue<int> q(1000);
  std::atomic<int> done{0};
  std::atomic<int> running{0}, peak{0};
  tcpd::WorkerPool pool;
  pool.start(4, [&](unsigned) {
    while (auto item = q.pop()) {
      const int now = ++running;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      --running;
      ++done;
    }
  });
  for (int i = 0; i < 40; ++i) {
    int v = i;
    ASSERT_TRUE(q.try_push(v));
  }
  q.close();
  pool.join();
  EXPECT_EQ(done, 40);
  EXPECT_GT(peak, 1);  // items were served concurrently
  EXPECT_LE(peak, 4);  // never by more threads than the pool has
}
