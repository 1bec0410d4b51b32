// The readiness core (EventCore) and the deadline queue (DeadlineQueue) know nothing of lines,
// sessions or outcomes: here they serve a protocol that is not tcpd's (a word ended by '!',
// answered reversed) on socketpairs, with two threads taking turns on the same set, as workers
// do.
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "deadline_queue.hpp"
#include "event_core.hpp"
#include "fd.hpp"

using namespace std::chrono_literals;
using tcpd::Clock;
using tcpd::DeadlineQueue;
using tcpd::EventCore;
using tcpd::Fd;

namespace {

constexpr uint64_t kTimer = uint64_t{1} << 40;
// One event, then re-armed by the thread that served it: this protocol's own way to keep one
// connection with one thread at a time.
constexpr uint32_t kOneEvent = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;

struct Pair {
  Fd ours, theirs;
};

Pair socket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  return {Fd(sv[0]), Fd(sv[1])};
}

// The fake protocol's server side: a word arrives in pieces; '!' ends it; the reply is the word
// reversed, then the connection closes. A connection silent past its deadline closes with no
// reply. Two threads serve it from one EventCore.
class ReverseServer {
 public:
  explicit ReverseServer(std::size_t n) : conns_(n) { core_.watch(deadlines_.fd(), kTimer, true); }

  void accept(std::size_t key, Fd fd, Clock::time_point deadline) {
    const int raw = fd.get();
    conns_[key].fd = std::move(fd);
    {
      std::lock_guard lock(mu_);
      conns_[key].deadline = deadline;
      deadlines_.file(static_cast<int>(key), deadline);
    }
    ASSERT_TRUE(core_.add(raw, kOneEvent, key));
  }

  // One worker's loop until every connection is done or `limit` passes.
  void work(Clock::time_point limit) {
    while (done_.load() < conns_.size() && Clock::now() < limit) {
      auto e = core_.wait(20, 4);
      if (!e) continue;
      if (e->key == kTimer) {
        expire();
      } else {
        serve(e->key);
      }
    }
  }

  std::atomic<int> overlaps{0};  // an event handed to two threads at once
  std::atomic<std::size_t> expired{0};

 private:
  struct Conn {
    Fd fd;
    std::string word;
    Clock::time_point deadline{};
    std::atomic<bool> busy{false};
    bool closed = false;  // under mu_
  };

  void serve(uint64_t key) {
    Conn& c = conns_[key];
    if (c.busy.exchange(true)) ++overlaps;
    char buf[4];  // small on purpose: a word takes several reads
    for (;;) {
      const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) break;
      c.word.append(buf, static_cast<std::size_t>(n));
    }
    const bool complete = !c.word.empty() && c.word.back() == '!';
    if (complete) {
      std::string reply(c.word.rbegin() + 1, c.word.rend());
      ::send(c.fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    c.busy = false;
    if (complete) {
      close(key);
    } else {
      rearm(key);
    }
  }

  void expire() {
    deadlines_.fired();
    std::lock_guard lock(mu_);
    deadlines_.pop_due(Clock::now(), [this](int key, Clock::time_point when) {
      Conn& c = conns_[static_cast<std::size_t>(key)];
      if (c.closed || c.deadline != when) return;
      c.closed = true;
      core_.remove(c.fd.get());
      ++expired;
      ++done_;
    });
    deadlines_.rearm();
  }

  void rearm(uint64_t key) {
    std::lock_guard lock(mu_);
    Conn& c = conns_[key];
    if (!c.closed) core_.modify(c.fd.get(), kOneEvent, key);
  }

  void close(uint64_t key) {
    std::lock_guard lock(mu_);
    Conn& c = conns_[key];
    if (c.closed) return;
    c.closed = true;
    core_.remove(c.fd.get());
    ::shutdown(c.fd.get(), SHUT_WR);
    ++done_;
  }

  EventCore core_;
  DeadlineQueue deadlines_;
  std::mutex mu_;
  std::vector<Conn> conns_;
  std::atomic<std::size_t> done_{0};
};

}  // namespace

TEST(EventCore, ServesAProtocolThatIsNotOursFromTwoThreads) {
  constexpr std::size_t kTalkers = 40, kSilent = 4;
  ReverseServer server(kTalkers + kSilent);
  std::vector<Fd> clients;
  for (std::size_t i = 0; i < kTalkers + kSilent; ++i) {
    Pair p = socket_pair();
    const auto deadline = Clock::now() + (i < kTalkers ? 10s : 100ms);
    server.accept(i, std::move(p.ours), deadline);
    clients.push_back(std::move(p.theirs));
  }
  const auto limit = Clock::now() + 10s;
  std::thread a([&] { server.work(limit); });
  std::thread b([&] { server.work(limit); });
  // Each talker sends its word in three pieces.
  for (std::size_t i = 0; i < kTalkers; ++i) {
    const std::string word = "word" + std::to_string(i) + "!";
    for (std::size_t at = 0; at < word.size(); at += 3) {
      const std::string piece = word.substr(at, 3);
      ASSERT_EQ(::send(clients[i].get(), piece.data(), piece.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(piece.size()));
    }
  }
  a.join();
  b.join();
  for (std::size_t i = 0; i < kTalkers; ++i) {
    char buf[64];
    const ssize_t n = ::recv(clients[i].get(), buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "talker " << i;
    std::string want = "word" + std::to_string(i);
    std::reverse(want.begin(), want.end());
    EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)), want);
  }
  EXPECT_EQ(server.expired.load(), kSilent);
  EXPECT_EQ(server.overlaps.load(), 0);
}

TEST(EventCore, KeepsWhatOneWaitReturnedForTheNextCaller) {
  EventCore core;
  std::vector<Pair> pairs;
  for (uint64_t k = 0; k < 3; ++k) {
    pairs.push_back(socket_pair());
    ASSERT_TRUE(core.add(pairs.back().ours.get(), EPOLLIN | EPOLLET, k));
    ASSERT_EQ(::send(pairs.back().theirs.get(), "x", 1, MSG_NOSIGNAL), 1);
  }
  std::vector<uint64_t> seen;
  auto first = core.wait(100, 16);
  ASSERT_TRUE(first.has_value());
  seen.push_back(first->key);
  EXPECT_TRUE(core.has_kept());
  while (auto e = core.take_kept()) seen.push_back(e->key);
  EXPECT_FALSE(core.has_kept());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_FALSE(core.wait(0, 16).has_value());  // edge-triggered: reported once

  core.hand_out(7);  // as if the kernel had reported it
  auto handed = core.wait(0, 16);
  ASSERT_TRUE(handed.has_value());
  EXPECT_EQ(handed->key, 7U);
  EXPECT_EQ(handed->events, 0U);
}

TEST(DeadlineQueue, PopsDueKeysInOrderAndCompactsStaleOnes) {
  DeadlineQueue q;
  const auto now = Clock::now();
  q.file(3, now + 30ms);
  q.file(1, now + 10ms);
  q.file(2, now + 20ms);
  q.file(9, now + 1h);
  std::vector<int> due;
  q.pop_due(now + 25ms, [&](int key, Clock::time_point) { due.push_back(key); });
  EXPECT_EQ(due, (std::vector<int>{1, 2}));
  EXPECT_EQ(q.size(), 2U);

  // Thousands of keys whose members left: compacted down to the live ones.
  for (int k = 100; k < 5100; ++k) q.file(k, now + 1h);
  q.compact_if_needed(10, [](int key, Clock::time_point) { return key < 100; });
  EXPECT_EQ(q.size(), 2U);  // 3 and 9

  // The timer fires at the earliest deadline.
  DeadlineQueue t;
  t.file(1, Clock::now() + 30ms);
  EventCore core;
  core.watch(t.fd(), 1, true);
  const auto start = Clock::now();
  auto e = core.wait(2000, 1);
  ASSERT_TRUE(e.has_value());
  EXPECT_GE(Clock::now() - start, 25ms);
  EXPECT_LT(Clock::now() - start, 1500ms);
}
