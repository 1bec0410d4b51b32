// A client's end of the stream, and the drain, on socketpairs (no server): a close that comes
// with the last request is read before the session would park, and the drain neither waits for
// an event that will not come nor leaves a session without its outcome.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <chrono>
#include <optional>
#include <string>

#include "parked.hpp"
#include "session.hpp"
#include "session_pair.hpp"

using namespace std::chrono_literals;
using tcpd::Clock;
using tcpd::Outcome;
using tcpd::Parked;
using tcpd::Session;
using tcpd::Verdict;
using Park = tcpd::Parked::Park;

namespace {

using Env = testing_support::SessionTestEnv;
using testing_support::make_session_pair;
using testing_support::next_session;

void send_all(int fd, const std::string& data) {
  ASSERT_EQ(::send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// A session that has been answered once, then parked in `p` (registered there).
void answered_and_parked(Env& e, Parked& p, tcpd::Fd& peer) {
  auto pair = make_session_pair();
  peer = std::move(pair.peer);
  Session s = std::move(pair.session);
  send_all(peer.get(), "a\n");
  std::string out;
  EXPECT_EQ(tcpd::serve(s, e.env, out).kind, Verdict::Kind::park);
  EXPECT_EQ(s.replies, 1U);
  EXPECT_EQ(p.park(s), Park::parked);
}

}  // namespace

// The request and the close arrive in one edge: the event says the peer closed, and serve()
// reads to the end instead of parking a session no event would wake.
TEST(HalfClose, CloseArrivingWithTheLastRequestEndsTheSessionServed) {
  Env e;
  Parked p(e.env, true, false);
  tcpd::Fd peer;
  answered_and_parked(e, p, peer);
  send_all(peer.get(), "b\n");
  ASSERT_EQ(::shutdown(peer.get(), SHUT_WR), 0);
  auto s = next_session(p);
  ASSERT_TRUE(s.has_value());
  std::string out;
  const Verdict v = tcpd::serve(*s, e.env, out);
  EXPECT_EQ(v.kind, Verdict::Kind::close);
  EXPECT_EQ(v.outcome, Outcome::served);
  EXPECT_EQ(s->replies, 2U);
}

// The end of the stream read after a partial request ends that request; once it is answered
// the session closes: nothing more can come.
TEST(HalfClose, EndOfStreamAfterAPartialRequestClosesOnceItIsAnswered) {
  Env e;
  auto [s, peer] = make_session_pair();
  send_all(peer.get(), "a\n");
  std::string out;
  ASSERT_EQ(tcpd::serve(s, e.env, out).kind, Verdict::Kind::park);
  send_all(peer.get(), "b");
  ASSERT_EQ(::shutdown(peer.get(), SHUT_WR), 0);
  const Verdict v = tcpd::serve(s, e.env, out);
  EXPECT_EQ(v.kind, Verdict::Kind::close);
  EXPECT_EQ(v.outcome, Outcome::served);
  EXPECT_EQ(s.replies, 2U);
}

// Input that arrived while no event would report it (its edge was taken with the session
// before) is handed to a worker by the drain, not left until the idle timeout.
TEST(DrainOfParked, InputWaitingWithoutAnEventIsHandedOut) {
  Env e;
  Parked p(e.env, true, false);
  tcpd::Fd peer;
  answered_and_parked(e, p, peer);
  send_all(peer.get(), "b\n");
  auto s = next_session(p);  // the edge is taken here; the bytes stay unread
  ASSERT_TRUE(s.has_value());
  ASSERT_EQ(p.park(*s), Park::parked);
  EXPECT_FALSE(p.wait(50).session.has_value());  // no further event

  e.draining = true;
  EXPECT_TRUE(p.begin_drain(Clock::now() + 2s));
  auto again = p.take_kept();
  ASSERT_TRUE(again.session.has_value());
  EXPECT_EQ(again.session->replies, 1U);
}

// An answered session whose client has closed its side (the close unread, its event taken) is
// closed by the drain at once, counted served, instead of waiting for an event.
TEST(DrainOfParked, AnsweredSessionWhoseClientClosedIsClosedAtOnce) {
  Env e;
  Parked p(e.env, true, false);
  tcpd::Fd peer;
  answered_and_parked(e, p, peer);
  ASSERT_EQ(::shutdown(peer.get(), SHUT_WR), 0);
  auto s = next_session(p);
  ASSERT_TRUE(s.has_value());
  s->hup_seen = false;  // as if the worker had not seen it: parked again, the close unread
  ASSERT_EQ(p.park(*s), Park::parked);

  e.draining = true;
  p.begin_drain(Clock::now() + 2s);
  EXPECT_EQ(p.sessions(), 0U);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::served), 1U);
}

// A partial request parked before the drain keeps no more than the drain's deadline.
TEST(DrainOfParked, APartialRequestIsClosedAtTheDrainDeadline) {
  Env e;
  e.config.io_timeout = 60s;
  Parked p(e.env, true, false);
  auto [s, peer] = make_session_pair();
  send_all(peer.get(), "a\npart");
  std::string out;
  ASSERT_EQ(tcpd::serve(s, e.env, out).kind, Verdict::Kind::park);
  ASSERT_EQ(p.park(s), Park::parked);
  e.draining = true;
  const auto start = Clock::now();
  p.begin_drain(start + 200ms);
  while (p.sessions() > 0 && Clock::now() - start < 5s) p.wait(20);
  EXPECT_EQ(p.sessions(), 0U);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_EQ(e.stats.snapshot().of(Outcome::shutdown), 1U);
}
