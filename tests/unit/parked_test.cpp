// The parked set on socketpairs, no server: how a session waits without a thread and is handed
// to exactly one thread when its client sends, how deadlines close it, lingering closes, the
// drain.
#include "parked.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "eventfd.hpp"

using namespace std::chrono_literals;
using tcpd::Clock;
using tcpd::Outcome;
using tcpd::Parked;
using tcpd::Session;

namespace {

struct Env {
  tcpd::ServerConfig config;
  tcpd::Stats stats{1};
  tcpd::Fd stop = tcpd::make_eventfd();
  std::atomic<bool> draining{false};
  std::atomic<Clock::rep> drain_deadline{0};
  tcpd::SessionEnv env{config, stats, stop.get(), draining, drain_deadline};
  Env() { config.log_level = tcpd::LogLevel::warn; }
};

// A session on one end of a socketpair; `peer` is the client's end.
struct Pair {
  Session session;
  tcpd::Fd peer;
};

Pair make_pair(Clock::duration idle = 10s) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  const auto now = Clock::now();
  Session s(tcpd::Fd(sv[0]), 1024, now, std::chrono::duration_cast<tcpd::Millis>(idle));
  return {std::move(s), tcpd::Fd(sv[1])};
}

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

// Waits on `p` until it hands out a session or `limit` passes.
std::optional<Session> next_session(Parked& p, std::chrono::milliseconds limit = 5s) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    auto w = p.wait(50);
    if (w.session) return std::move(w.session);
  }
  return std::nullopt;
}

}  // namespace

TEST(Parked, ASessionWaitsUntilItsClientSendsAndIsHandedOutOnce) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_pair();
  const int fd = s.fd.get();
  ASSERT_TRUE(parked.park(s));
  EXPECT_EQ(parked.sessions(), 1u);
  EXPECT_TRUE(parked.wait(0).timed_out);  // nothing sent yet
  ASSERT_EQ(::write(peer.get(), "hi\n", 3), 3);
  auto got = next_session(parked);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->fd.get(), fd);
  EXPECT_TRUE(got->registered);
  EXPECT_EQ(parked.sessions(), 0u);
  // EPOLLONESHOT: the unread bytes do not hand it out a second time while it is out.
  EXPECT_TRUE(parked.wait(20).timed_out);
}

TEST(Parked, ASessionParkedAgainIsReArmedNotRegisteredTwice) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_pair();
  ASSERT_TRUE(parked.park(s));
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(::write(peer.get(), "x", 1), 1);
    auto got = next_session(parked);
    ASSERT_TRUE(got) << "round " << round;
    char c;
    ASSERT_EQ(::read(got->fd.get(), &c, 1), 1);
    ASSERT_TRUE(parked.park(*got)) << "round " << round;  // EPOLL_CTL_MOD: ADD would fail
  }
}

TEST(Parked, OneEventGoesToExactlyOneOfManyWaitingThreads) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_pair();
  ASSERT_TRUE(parked.park(s));
  std::atomic<int> handed{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&] {
      if (parked.wait(300).session) ++handed;
    });
  }
  ASSERT_EQ(::write(peer.get(), "x", 1), 1);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(handed, 1);
}

TEST(Parked, AnIdleSessionIsClosedAtItsIdleDeadline) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_pair(50ms);
  ASSERT_TRUE(parked.park(s));
  const auto start = Clock::now();
  // The timer's event closes it in whichever thread waits.
  while (parked.sessions() > 0 && Clock::now() - start < 5s) parked.wait(100);
  EXPECT_EQ(parked.sessions(), 0u);
  EXPECT_GE(Clock::now() - start, 45ms);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::idle_timeout), 1u);
  char c;
  EXPECT_EQ(::read(peer.get(), &c, 1), 0);  // the client sees the close
}

TEST(Parked, APartialRequestKeepsItsOwnDeadline) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_pair(10s);
  s.framer.append("half a requ");
  s.request_deadline = Clock::now() + 50ms;  // earlier than the idle deadline: it is the one
  ASSERT_TRUE(parked.park(s));
  const auto start = Clock::now();
  while (parked.sessions() > 0 && Clock::now() - start < 5s) parked.wait(100);
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::io_timeout), 1u);
}

TEST(Parked, ALaterEarlierDeadlineReArmsTheTimer) {
  Env e;
  Parked parked(e.env, true, false);
  auto [late, late_peer] = make_pair(10s);
  auto [soon, soon_peer] = make_pair(60ms);
  ASSERT_TRUE(parked.park(late));  // the timer is armed for 10 s
  ASSERT_TRUE(parked.park(soon));  // must move it to 60 ms
  const auto start = Clock::now();
  while (parked.sessions() > 1 && Clock::now() - start < 5s) parked.wait(-1);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_EQ(parked.sessions(), 1u);  // the late one still waits
}

TEST(Parked, ALingeringCloseDiscardsInputUntilThePeerCloses) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_pair();
  const int fd = s.fd.get();
  ASSERT_EQ(::write(peer.get(), "unread", 6), 6);
  parked.linger(std::move(s.fd), false);
  EXPECT_TRUE(is_open(fd));  // the peer has not closed: it waits, discarding
  char c;
  EXPECT_EQ(::read(peer.get(), &c, 1), 0);  // the write side is shut down
  ASSERT_EQ(::write(peer.get(), "more", 4), 4);
  peer.reset();
  const auto start = Clock::now();
  while (is_open(fd) && Clock::now() - start < 5s) parked.wait(100);
  EXPECT_FALSE(is_open(fd));
  EXPECT_LT(Clock::now() - start, tcpd::kLingerClose);
}

TEST(Parked, AWatchedDescriptorReturnsItsTag) {
  Env e;
  Parked parked(e.env, true, false);
  tcpd::Fd ev = tcpd::make_eventfd();
  parked.watch(ev.get(), Parked::kFirstTag + 5, true);
  EXPECT_TRUE(parked.wait(0).timed_out);
  tcpd::raise_eventfd(ev.get());
  EXPECT_EQ(parked.wait(1000).tag, Parked::kFirstTag + 5);
  EXPECT_TRUE(parked.wait(0).timed_out);  // edge-triggered: once per raise
}

TEST(Parked, TheDrainClosesAnsweredIdleSessionsAndGivesTheRestAGrace) {
  Env e;
  Parked parked(e.env, true, false);
  auto [answered, answered_peer] = make_pair();
  answered.replies = 1;
  auto [asking, asking_peer] = make_pair();
  asking.replies = 1;
  ASSERT_EQ(::write(asking_peer.get(), "next\n", 5), 5);  // its next request is here
  auto [silent, silent_peer] = make_pair();               // new, has sent nothing
  ASSERT_TRUE(parked.park(answered));
  ASSERT_TRUE(parked.park(asking));
  ASSERT_TRUE(parked.park(silent));
  e.draining = true;
  parked.begin_drain(Clock::now() + 5s);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::served), 1u);  // the answered one, closed now
  EXPECT_EQ(parked.sessions(), 2u);
  auto more = make_pair();
  EXPECT_FALSE(parked.park(more.session));  // refused from now on
  EXPECT_TRUE(more.session.fd);             // and left to the caller
  auto got = next_session(parked);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->replies, 1u);  // the one with a request waiting is handed out
  // The silent one is closed at its grace (kFirstRequestGrace from its accept), well before
  // the drain deadline, counted as shutdown.
  const auto start = Clock::now();
  while (parked.sessions() > 0 && Clock::now() - start < 3s) parked.wait(100);
  EXPECT_EQ(parked.sessions(), 0u);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::shutdown), 1u);
}

TEST(Parked, ANewConnectionsSetGivesEveryoneBackOnTakeAll) {
  Env e;
  Parked waiting_new(e.env, false, false);
  auto [a, pa] = make_pair();
  auto [b, pb] = make_pair();
  ASSERT_TRUE(waiting_new.park(a));
  ASSERT_TRUE(waiting_new.park(b));
  auto all = waiting_new.take_all();
  EXPECT_EQ(all.size(), 2u);
  EXPECT_EQ(waiting_new.sessions(), 0u);
  for (auto& s : all) EXPECT_FALSE(s.registered);  // removed from this set, not the workers'
  // Removed from the epoll set too: a byte sent now wakes nobody.
  ASSERT_EQ(::write(pa.get(), "x", 1), 1);
  EXPECT_TRUE(waiting_new.wait(50).timed_out);
}
