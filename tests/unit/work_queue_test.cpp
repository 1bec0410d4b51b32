#include "work_queue.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "queue_worker.hpp"

using tcpd::WorkQueue;
using namespace std::chrono_literals;

namespace {

bool readable(int fd, int timeout_ms = 0) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

void consume(int fd) {
  uint64_t v;
  [[maybe_unused]] auto rc = ::read(fd, &v, sizeof v);
}

// Waits (bounded) until `n` workers wait in the queue: a test that acts earlier tests nothing.
bool idle_reaches(const WorkQueue<int>& q, std::size_t n) {
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (q.idle_workers() != n) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST(WorkQueue, FifoOrder) {
  WorkQueue<int> q(10);
  for (int i = 0; i < 5; ++i) {
    int v = i;
    ASSERT_TRUE(q.try_push(v));
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q.try_pop(), i);
  EXPECT_EQ(q.try_pop(), std::nullopt);
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

TEST(WorkQueue, PushIgnoresTheBoundAndCloseStopsOnlyTryPush) {
  WorkQueue<int> q(1);
  int a = 1, b = 2, c = 3;
  EXPECT_TRUE(q.try_push(a));
  q.push(b);  // the drain's hand-off: always taken
  EXPECT_FALSE(q.try_push(c));
  q.close();
  EXPECT_FALSE(q.closed_and_empty());
  EXPECT_EQ(q.try_pop(), 1);
  EXPECT_EQ(q.try_pop(), 2);
  EXPECT_TRUE(q.closed_and_empty());
  int d = 4;
  EXPECT_FALSE(q.try_push(d));
}

TEST(WorkQueue, TheFirstIdleWorkerLeadsTheOthersFollow) {
  WorkQueue<int> q(8);
  auto first = q.wait_turn();  // nobody leads: this one does
  EXPECT_TRUE(first.lead);
  EXPECT_FALSE(first.item);
  auto follower = std::async(std::launch::async, [&] { return q.wait_turn(); });
  ASSERT_TRUE(idle_reaches(q, 2));  // the leader and one follower
  // A push wakes the leader, which sleeps anyway; the follower sleeps on.
  int v = 7;
  ASSERT_TRUE(q.try_push(v));
  EXPECT_TRUE(readable(q.wake_fd()));
  EXPECT_EQ(follower.wait_for(50ms), std::future_status::timeout);
  // A second push while the leader's wake-up is still pending is more work than the leader: it
  // wakes the follower, which takes the first item (FIFO).
  int w = 8;
  ASSERT_TRUE(q.try_push(w));
  auto got = follower.get();
  EXPECT_EQ(got.item, 7);
  consume(q.wake_fd());
  q.woken();
  q.end_lead();
  EXPECT_EQ(q.try_pop(), 8);
}

TEST(WorkQueue, HeldPushesWakeNobodyUntilWakeHeldThenTheLeaderAndAFollowerPerFurtherItem) {
  // The acceptor queues a batch from its backlog before waking anyone: a woken worker would
  // preempt it after every connection.
  WorkQueue<int> q(8);
  ASSERT_TRUE(q.wait_turn().lead);
  auto f1 = std::async(std::launch::async, [&] { return q.wait_turn(); });
  auto f2 = std::async(std::launch::async, [&] { return q.wait_turn(); });
  ASSERT_TRUE(idle_reaches(q, 3));  // the leader and two followers
  int a = 1, b = 2;
  ASSERT_TRUE(q.try_push_held(a));
  ASSERT_TRUE(q.try_push_held(b));
  EXPECT_EQ(q.size(), 2u);  // queued: a running worker may take them
  EXPECT_FALSE(readable(q.wake_fd()));
  EXPECT_EQ(f1.wait_for(50ms), std::future_status::timeout);
  EXPECT_EQ(q.idle_workers(), 3u);
  q.wake_held();
  EXPECT_TRUE(readable(q.wake_fd()));  // the leader, for the first
  // One follower for the second; the other sleeps on.
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (f1.wait_for(1ms) != std::future_status::ready &&
         f2.wait_for(1ms) != std::future_status::ready && std::chrono::steady_clock::now() < end) {
  }
  const bool first = f1.wait_for(0ms) == std::future_status::ready;
  auto& woken = first ? f1 : f2;
  auto& asleep = first ? f2 : f1;
  ASSERT_EQ(woken.wait_for(0ms), std::future_status::ready);
  EXPECT_EQ(woken.get().item, 1);
  EXPECT_EQ(asleep.wait_for(50ms), std::future_status::timeout);
  q.wake_held();  // nothing held: nothing more
  EXPECT_EQ(asleep.wait_for(50ms), std::future_status::timeout);
  consume(q.wake_fd());
  q.woken();
  q.end_lead();
  EXPECT_EQ(q.try_pop(), 2);
  // Items a running worker took before wake_held() need nobody.
  int c = 3;
  ASSERT_TRUE(q.try_push_held(c));
  EXPECT_EQ(q.try_pop(), 3);
  q.wake_held();
  EXPECT_EQ(asleep.wait_for(50ms), std::future_status::timeout);
  q.finish();
  EXPECT_FALSE(asleep.get().item);
}

TEST(WorkQueue, LeadingFromALeadTurnUntilEndLead) {
  // While a worker leads, the others need not look at the epoll set themselves: the kernel
  // wakes the leader for anything new there.
  WorkQueue<int> q(8);
  EXPECT_FALSE(q.leading());
  ASSERT_TRUE(q.wait_turn().lead);
  EXPECT_TRUE(q.leading());
  int v = 1;
  ASSERT_TRUE(q.try_push(v));  // wakes the leader; it still leads until it says so
  EXPECT_TRUE(q.leading());
  q.woken();
  q.end_lead();
  EXPECT_FALSE(q.leading());
  EXPECT_EQ(q.wait_turn().item, 1);
  EXPECT_FALSE(q.leading());  // a worker that took an item does not lead
}

TEST(WorkQueue, WithNoFollowerAPushWakesTheLeaderOnce) {
  WorkQueue<int> q(8);
  ASSERT_TRUE(q.wait_turn().lead);
  int a = 1, b = 2;
  ASSERT_TRUE(q.try_push(a));
  EXPECT_TRUE(readable(q.wake_fd()));
  consume(q.wake_fd());
  ASSERT_TRUE(q.try_push(b));  // already raised, not yet seen: no second write
  EXPECT_FALSE(readable(q.wake_fd()));
  q.woken();
  q.end_lead();
  // After the leader has looked, the next push that needs a leader raises it again.
  ASSERT_TRUE(q.wait_turn().item);  // 1
  ASSERT_TRUE(q.wait_turn().item);  // 2
  ASSERT_TRUE(q.wait_turn().lead);
  int c = 3;
  ASSERT_TRUE(q.try_push(c));
  EXPECT_TRUE(readable(q.wake_fd()));
}

TEST(WorkQueue, AWorkerAboutToBlockWithWorkKeptWakesTheSleepingLeader) {
  // Events the parked set took from the kernel and kept for later are not reported again: a
  // leader asleep in epoll_wait() must be woken to hand them out, or they wait for the request
  // the worker is about to sleep in.
  WorkQueue<int> q(8);
  ASSERT_TRUE(q.wait_turn().lead);
  q.lend_lead();  // nothing kept: the leader sleeps on
  EXPECT_FALSE(readable(q.wake_fd()));
  q.lend_lead(true);
  EXPECT_TRUE(readable(q.wake_fd()));
  consume(q.wake_fd());
  q.lend_lead(true);  // raised and not seen yet: once is enough
  EXPECT_FALSE(readable(q.wake_fd()));
  q.woken();
  q.end_lead();
  q.lend_lead(true);  // nobody leads and nobody follows: nobody to wake
  EXPECT_FALSE(readable(q.wake_fd()));
}

TEST(WorkQueue, ALeaderThatLeavesWakesNobodyUntilAWorkerWillBlock) {
  WorkQueue<int> q(8);
  ASSERT_TRUE(q.wait_turn().lead);
  auto follower = std::async(std::launch::async, [&] { return q.wait_turn(); });
  ASSERT_TRUE(idle_reaches(q, 2));
  q.end_lead();  // the leader got an event and goes to serve it: no context switch for that
  EXPECT_EQ(follower.wait_for(50ms), std::future_status::timeout);
  q.lend_lead();  // the worker is about to sleep inside the request: the follower leads now
  auto got = follower.get();
  EXPECT_TRUE(got.lead);
  EXPECT_EQ(q.idle_workers(), 1u);
  q.lend_lead();  // someone leads already: nothing to do
}

TEST(WorkQueue, FinishReleasesEveryWaiterAndWakesTheLeader) {
  WorkQueue<int> q(8);
  ASSERT_TRUE(q.wait_turn().lead);
  auto follower = std::async(std::launch::async, [&] { return q.wait_turn(); });
  ASSERT_TRUE(idle_reaches(q, 2));
  EXPECT_FALSE(q.wait_finished(std::chrono::steady_clock::now() + 10ms));
  q.finish();
  auto got = follower.get();
  EXPECT_FALSE(got.item);
  EXPECT_FALSE(got.lead);
  EXPECT_TRUE(readable(q.wake_fd()));  // the leader asleep in epoll_wait() leaves too
  EXPECT_TRUE(q.wait_finished(std::chrono::steady_clock::now()));
  auto later = q.wait_turn();
  EXPECT_FALSE(later.item || later.lead);
}

TEST(WorkQueue, ManyProducersAndConsumersLoseNothing) {
  WorkQueue<int> q(64);
  constexpr int kPerProducer = 20000;
  std::atomic<long> sum{0};
  std::atomic<int> popped{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 4; ++c) {
    consumers.emplace_back([&] {
      while (auto v = tcpd::test::take(q)) {
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
  // Every item taken before the consumers are let go.
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (popped < 2 * kPerProducer && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(1ms);
  }
  q.finish();
  for (auto& t : consumers) t.join();
  EXPECT_EQ(popped, 2 * kPerProducer);
  EXPECT_EQ(sum, 2L * kPerProducer * (kPerProducer + 1) / 2);
}
