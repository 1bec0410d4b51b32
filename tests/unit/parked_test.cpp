// The parked set on socketpairs, no server: how a session waits without a thread and is handed
// to exactly one thread when its client sends, how deadlines close it, lingering closes, the
// drain.
#include "parked.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "eventfd.hpp"
#include "session_pair.hpp"

using namespace std::chrono_literals;
using tcpd::Clock;
using tcpd::Outcome;
using tcpd::Parked;
using Park = tcpd::Parked::Park;
using tcpd::Session;

namespace {

using Env = testing_support::SessionTestEnv;
using testing_support::make_session_pair;

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

using testing_support::next_session;

// Runs `p`'s events and timer in this thread until at most `left` sessions are parked or
// `limit` passes. Returns how long that took.
Clock::duration wait_until_parked(Parked& p, std::size_t left, Clock::duration limit = 5s) {
  const auto start = Clock::now();
  while (p.sessions() > left && Clock::now() - start < limit) p.wait(50);
  return Clock::now() - start;
}

// Parks `n` sessions; their clients' ends go to `peers`, their descriptors to `fds`. False
// when one of them was not parked.
bool park_pairs(Parked& parked, int n, std::vector<tcpd::Fd>& peers, std::vector<int>& fds) {
  for (int i = 0; i < n; ++i) {
    auto [s, peer] = make_session_pair();
    fds.push_back(s.fd.get());
    if (parked.park(s) != Park::parked) return false;
    peers.push_back(std::move(peer));
  }
  return true;
}

}  // namespace

TEST(Parked, ASessionWaitsUntilItsClientSendsAndIsHandedOutOnce) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_session_pair();
  const int fd = s.fd.get();
  ASSERT_EQ(parked.park(s), Park::parked);
  EXPECT_EQ(parked.sessions(), 1u);
  EXPECT_TRUE(parked.wait(0).timed_out);  // nothing sent yet
  ASSERT_EQ(::write(peer.get(), "hi\n", 3), 3);
  auto got = next_session(parked);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->fd.get(), fd);
  EXPECT_TRUE(got->registered);
  EXPECT_EQ(parked.sessions(), 0u);
  // Edge-triggered: the unread bytes do not hand it out (or mark it) a second time.
  EXPECT_TRUE(parked.wait(20).timed_out);
  EXPECT_EQ(parked.park(*got), Park::parked);
}

TEST(Parked, ASessionParkedAgainIsReArmedNotRegisteredTwice) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_session_pair();
  ASSERT_EQ(parked.park(s), Park::parked);
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(::write(peer.get(), "x", 1), 1);
    auto got = next_session(parked);
    ASSERT_TRUE(got) << "round " << round;
    char c;
    ASSERT_EQ(::read(got->fd.get(), &c, 1), 1);
    ASSERT_EQ(parked.park(*got), Park::parked) << "round " << round;  // ADD again would fail
  }
}

TEST(Parked, BytesThatComeWhileAThreadHasTheSessionMakeParkSayReady) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_session_pair();
  ASSERT_EQ(parked.park(s), Park::parked);
  ASSERT_EQ(::write(peer.get(), "a\n", 2), 2);
  auto got = next_session(parked);
  ASSERT_TRUE(got);
  char buf[8];
  ASSERT_EQ(::read(got->fd.get(), buf, sizeof buf), 2);
  // The client sends again while the session is out; another thread sees the edge.
  ASSERT_EQ(::write(peer.get(), "b\n", 2), 2);
  auto w = parked.wait(1000);
  EXPECT_FALSE(w.timed_out);
  EXPECT_FALSE(w.session);
  // Parking it would lose that edge: park says so and leaves the session with its thread.
  EXPECT_EQ(parked.park(*got), Park::ready);
  EXPECT_TRUE(got->fd);
  EXPECT_EQ(parked.sessions(), 0u);
  ASSERT_EQ(::read(got->fd.get(), buf, sizeof buf), 2);
  EXPECT_EQ(parked.park(*got), Park::parked);  // the mark is used up
  // Bytes that come before any thread looks are handed out once it is parked.
  ASSERT_EQ(::write(peer.get(), "c\n", 2), 2);
  EXPECT_TRUE(next_session(parked));
}

TEST(Parked, ADescriptorNumberReusedAfterForgetStartsAfresh) {
  Env e;
  Parked parked(e.env, true, false);
  int first_fd = -1;
  {
    auto [s, peer] = make_session_pair();
    first_fd = s.fd.get();
    ASSERT_EQ(parked.park(s), Park::parked);
    ASSERT_EQ(::write(peer.get(), "a", 1), 1);
    auto got = next_session(parked);
    ASSERT_TRUE(got);
    ASSERT_EQ(::write(peer.get(), "b", 1), 1);
    EXPECT_FALSE(parked.wait(1000).timed_out);  // marks the entry ready
    parked.forget(got->fd.get());               // then it closes
  }
  auto [s, peer] = make_session_pair();
  ASSERT_EQ(s.fd.get(), first_fd);  // the lowest free number: the same one
  // A new registration (ADD, not the old entry's mark): parked, and handed out on its bytes.
  ASSERT_EQ(parked.park(s), Park::parked);
  EXPECT_TRUE(parked.wait(20).timed_out);
  ASSERT_EQ(::write(peer.get(), "x", 1), 1);
  EXPECT_TRUE(next_session(parked));
}

TEST(Parked, ADeadlineThatMovedLaterIsKeptNotTheFirstOne) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_session_pair(100ms);
  const auto start = Clock::now();
  ASSERT_EQ(parked.park(s), Park::parked);  // filed for start + 100 ms
  ASSERT_EQ(::write(peer.get(), "a", 1), 1);
  auto got = next_session(parked);
  ASSERT_TRUE(got);
  char c;
  ASSERT_EQ(::read(got->fd.get(), &c, 1), 1);
  got->idle_deadline = Clock::now() + 600ms;  // answered: a new idle deadline
  ASSERT_EQ(parked.park(*got), Park::parked);
  // The first key falls due at 100 ms and is filed again; the session stays.
  while (Clock::now() - start < 300ms) parked.wait(20);
  EXPECT_EQ(parked.sessions(), 1u);
  wait_until_parked(parked, 0);
  EXPECT_EQ(parked.sessions(), 0u);
  EXPECT_GE(Clock::now() - start, 550ms);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::idle_timeout), 1u);
}

// Each closed connection leaves its deadline key behind until it falls due (10 s here):
// without compacting, 5,000 short connections leave 5,000 keys (2 MB after 100,000 of them).
TEST(Parked, TheDeadlineIndexDoesNotGrowWithClosedConnections) {
  Env e;
  Parked parked(e.env, true, false);
  for (int i = 0; i < 5000; ++i) {
    auto [s, peer] = make_session_pair(10s);
    ASSERT_EQ(parked.park(s), Park::parked);
    ASSERT_EQ(::write(peer.get(), "x", 1), 1);
    auto got = next_session(parked);
    ASSERT_TRUE(got);
    parked.forget(got->fd.get());  // then it closes, answered
  }
  EXPECT_EQ(parked.sessions(), 0u);
  EXPECT_LE(parked.deadline_keys(), 1100u);
  // A live session's key survives compaction: it is still closed at its deadline.
  auto [s, peer] = make_session_pair(50ms);
  ASSERT_EQ(parked.park(s), Park::parked);
  wait_until_parked(parked, 0);
  EXPECT_EQ(parked.sessions(), 0u);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::idle_timeout), 1u);
}

TEST(Parked, OneEventGoesToExactlyOneOfManyWaitingThreads) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_session_pair();
  ASSERT_EQ(parked.park(s), Park::parked);
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

TEST(Parked, OneWaitTakesSeveralEventsAndHandsOutTheKeptOnesFirst) {
  // The workers' set takes the ready events of one epoll_wait() together and keeps the rest:
  // each session is still handed out exactly once, and the kept ones before newer events.
  Env e;
  Parked parked(e.env, true, false);
  std::vector<tcpd::Fd> peers;
  std::vector<int> fds;
  ASSERT_TRUE(park_pairs(parked, 4, peers, fds));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(::write(peers[i].get(), "x", 1), 1);
  std::vector<Session> out;
  auto first = parked.wait(1000);
  ASSERT_TRUE(first.session);
  out.push_back(std::move(*first.session));
  EXPECT_TRUE(parked.has_kept());  // the other two came with it
  ASSERT_EQ(::write(peers[3].get(), "x", 1), 1);
  for (int i = 0; i < 3; ++i) {
    auto w = parked.wait(1000);
    ASSERT_TRUE(w.session) << i;
    out.push_back(std::move(*w.session));
  }
  EXPECT_FALSE(parked.has_kept());
  EXPECT_TRUE(parked.wait(0).timed_out);  // nothing twice
  std::vector<int> first_three;
  for (int i = 0; i < 3; ++i) first_three.push_back(out[i].fd.get());
  std::vector<int> written(fds.begin(), fds.begin() + 3);
  std::sort(first_three.begin(), first_three.end());
  std::sort(written.begin(), written.end());
  EXPECT_EQ(first_three, written);
  EXPECT_EQ(out[3].fd.get(), fds[3]);  // the newer event came after the kept ones
}

TEST(Parked, TakeKeptHandsOutOnlyWhatAWaitKeptAndLeavesNewEventsToEpoll) {
  // A worker that knows the leader is asleep in epoll_wait() looks only at the kept events: a
  // new event stays in the kernel for the leader (or the next wait), handed out once.
  Env e;
  Parked parked(e.env, true, false);
  std::vector<tcpd::Fd> peers;
  std::vector<int> fds;
  ASSERT_TRUE(park_pairs(parked, 3, peers, fds));
  EXPECT_TRUE(parked.take_kept().timed_out);  // nothing kept, nothing taken from the kernel
  for (int i = 0; i < 2; ++i) ASSERT_EQ(::write(peers[i].get(), "x", 1), 1);
  auto first = parked.wait(1000);
  ASSERT_TRUE(first.session);
  ASSERT_EQ(::write(peers[2].get(), "x", 1), 1);
  auto kept = parked.take_kept();
  ASSERT_TRUE(kept.session);
  EXPECT_FALSE(parked.has_kept());
  std::vector<int> got{first.session->fd.get(), kept.session->fd.get()};
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, std::vector<int>(fds.begin(), fds.begin() + 2));
  EXPECT_TRUE(parked.take_kept().timed_out);  // the third is ready, but in the kernel
  auto third = parked.wait(0);
  ASSERT_TRUE(third.session);
  EXPECT_EQ(third.session->fd.get(), fds[2]);
  EXPECT_TRUE(parked.wait(0).timed_out);
}

TEST(Parked, AnIdleSessionIsClosedAtItsIdleDeadline) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_session_pair(50ms);
  ASSERT_EQ(parked.park(s), Park::parked);
  // The timer's event closes it in whichever thread waits.
  EXPECT_GE(wait_until_parked(parked, 0), 45ms);
  EXPECT_EQ(parked.sessions(), 0u);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::idle_timeout), 1u);
  char c;
  EXPECT_EQ(::read(peer.get(), &c, 1), 0);  // the client sees the close
}

TEST(Parked, APartialRequestKeepsItsOwnDeadline) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_session_pair(10s);
  s.framer.append("half a requ");
  s.request_deadline = Clock::now() + 50ms;  // earlier than the idle deadline: it is the one
  ASSERT_EQ(parked.park(s), Park::parked);
  EXPECT_LT(wait_until_parked(parked, 0), 5s);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::io_timeout), 1u);
}

TEST(Parked, ALaterEarlierDeadlineReArmsTheTimer) {
  Env e;
  Parked parked(e.env, true, false);
  auto [late, late_peer] = make_session_pair(10s);
  auto [soon, soon_peer] = make_session_pair(60ms);
  ASSERT_EQ(parked.park(late), Park::parked);  // the timer is armed for 10 s
  ASSERT_EQ(parked.park(soon), Park::parked);  // must move it to 60 ms
  EXPECT_LT(wait_until_parked(parked, 1), 2s);
  EXPECT_EQ(parked.sessions(), 1u);  // the late one still waits
}

TEST(Parked, ALingeringCloseDiscardsInputUntilThePeerCloses) {
  Env e;
  Parked parked(e.env, true, false);
  auto [s, peer] = make_session_pair();
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
  auto [answered, answered_peer] = make_session_pair();
  answered.replies = 1;
  auto [asking, asking_peer] = make_session_pair();
  asking.replies = 1;
  ASSERT_EQ(::write(asking_peer.get(), "next\n", 5), 5);  // its next request is here
  auto [silent, silent_peer] = make_session_pair();       // new, has sent nothing
  ASSERT_EQ(parked.park(answered), Park::parked);
  ASSERT_EQ(parked.park(asking), Park::parked);
  ASSERT_EQ(parked.park(silent), Park::parked);
  e.draining = true;
  parked.begin_drain(Clock::now() + 5s);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::served), 1u);  // the answered one, closed now
  EXPECT_EQ(parked.sessions(), 2u);
  auto more = make_session_pair();
  EXPECT_EQ(parked.park(more.session), Park::refused);  // refused from now on
  EXPECT_TRUE(more.session.fd);                         // and left to the caller
  auto got = next_session(parked);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->replies, 1u);  // the one with a request waiting is handed out
  // The silent one is closed at its grace (kFirstRequestGrace from its accept), well before
  // the drain deadline, counted as shutdown.
  EXPECT_LT(wait_until_parked(parked, 0, 3s), 2s);
  EXPECT_EQ(parked.sessions(), 0u);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::shutdown), 1u);
}

TEST(Parked, ANewConnectionsSetGivesEveryoneBackOnTakeAll) {
  Env e;
  Parked waiting_new(e.env, false, false);
  auto [a, pa] = make_session_pair();
  auto [b, pb] = make_session_pair();
  ASSERT_EQ(waiting_new.park(a), Park::parked);
  ASSERT_EQ(waiting_new.park(b), Park::parked);
  auto all = waiting_new.take_all();
  EXPECT_EQ(all.size(), 2u);
  EXPECT_EQ(waiting_new.sessions(), 0u);
  for (auto& s : all) EXPECT_FALSE(s.registered);  // removed from this set, not the workers'
  // Removed from the epoll set too: a byte sent now wakes nobody.
  ASSERT_EQ(::write(pa.get(), "x", 1), 1);
  EXPECT_TRUE(waiting_new.wait(50).timed_out);
}
