#include "work_queue.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using tcpd::WorkQueue;
using namespace std::chrono_literals;

namespace {

bool readable(int fd, int timeout_ms = 0) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

}  // namespace

TEST(WorkQueue, FifoOrder) {
  WorkQueue<int> q(10);
  for (int i = 0; i < 5; ++i) {
    int v = i;
    ASSERT_TRUE(q.try_push(v));
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q.pop(), i);
}

TEST(WorkQueue, TryPushFailsWhenFullAndLeavesTheItem) {
  WorkQueue<std::unique_ptr<int>> q(2);
  auto a = std::make_unique<int>(1), b = std::make_unique<int>(2), c = std::make_unique<int>(3);
  EXPECT_TRUE(q.try_push(a));
  EXPECT_TRUE(q.try_push(b));
  EXPECT_FALSE(q.try_push(c));
  ASSERT_TRUE(c);  // the caller still owns it, to reject it
  EXPECT_EQ(*c, 3);
  EXPECT_EQ(q.size(), 2u);
}

TEST(WorkQueue, RequeuedItemsDoNotCountAgainstCapacity) {
  WorkQueue<int> q(1);
  int a = 1, b = 2, c = 3;
  EXPECT_TRUE(q.try_push(a));
  q.push(b);  // a session coming back from the poller
  EXPECT_FALSE(q.try_push(c));
  EXPECT_EQ(q.pop(), 1);
  EXPECT_TRUE(q.try_push(c));
  EXPECT_EQ(q.pop(), 2);
  EXPECT_EQ(q.pop(), 3);
}

TEST(WorkQueue, CloseWakesWaitersAndDrainsFirst) {
  WorkQueue<int> q(4);
  int one = 1;
  ASSERT_TRUE(q.try_push(one));
  q.close();
  EXPECT_EQ(q.pop(), 1);
  EXPECT_EQ(q.pop(), std::nullopt);
  int two = 2;
  EXPECT_FALSE(q.try_push(two));

  WorkQueue<int> q2(4);
  std::atomic<bool> returned{false};
  std::thread t([&] {
    EXPECT_EQ(q2.pop(), std::nullopt);
    returned = true;
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(returned);
  q2.close();
  t.join();
  EXPECT_TRUE(returned);
}

TEST(WorkQueue, BacklogFdSignalsOnlyWhenNoIdleWorkerCanTakeTheItem) {
  WorkQueue<int> q(8);
  EXPECT_FALSE(readable(q.backlog_fd()));
  int v = 1;
  ASSERT_TRUE(q.try_push(v));  // nobody idle: the item is owed a worker
  EXPECT_TRUE(readable(q.backlog_fd()));
  EXPECT_TRUE(q.backlogged());
  EXPECT_EQ(q.pop(), 1);  // emptied: the level resets
  EXPECT_FALSE(readable(q.backlog_fd()));
  EXPECT_FALSE(q.backlogged());

  // With a worker idle in pop(), a single push is taken without raising the signal.
  std::atomic<int> got{0};
  std::thread t([&] { got = q.pop().value_or(-1); });
  // Push only once the worker is idle inside pop(); earlier would test nothing.
  for (int i = 0; i < 5000 && q.idle_workers() == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(q.idle_workers(), 1u);
  int w = 7;
  ASSERT_TRUE(q.try_push(w));
  t.join();
  EXPECT_EQ(got, 7);
  EXPECT_FALSE(readable(q.backlog_fd()));
}

TEST(WorkQueue, CloseRaisesTheBacklogFd) {
  WorkQueue<int> q(1);
  q.close();
  EXPECT_TRUE(readable(q.backlog_fd()));
}

TEST(WorkQueue, ManyProducersAndConsumersLoseNothing) {
  WorkQueue<int> q(64);
  constexpr int kPerProducer = 20000;
  std::atomic<long> sum{0};
  std::atomic<int> popped{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 4; ++c) {
    consumers.emplace_back([&] {
      while (auto v = q.pop()) {
        sum += *v;
        ++popped;
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&] {
      for (int i = 1; i <= kPerProducer; ++i) {
        int v = i;
        if (i % 2 == 0) {
          q.push(v);
        } else {
          while (!q.try_push(v)) std::this_thread::yield();
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  q.close();
  for (auto& t : consumers) t.join();
  EXPECT_EQ(popped, 2 * kPerProducer);
  EXPECT_EQ(sum, 2L * kPerProducer * (kPerProducer + 1) / 2);
}

TEST(WorkQueue, WakeForGoodKeepsTheBacklogFdRaised) {
  WorkQueue<int> q(4);
  q.wake_for_good();
  int v = 1;
  ASSERT_TRUE(q.try_push(v));
  EXPECT_EQ(q.pop(), 1);  // emptying the queue no longer lowers it
  EXPECT_TRUE(readable(q.backlog_fd()));
}
