// What one serve() call may take from its worker, on socketpairs (no server): a client streaming
// requests gets a turn's share of input and then gives the worker back; a reply that finds the
// client's socket full waits in the session, not in the worker.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <string>
#include <thread>

#include "session.hpp"
#include "session_pair.hpp"

using namespace std::chrono_literals;
using tcpd::Clock;
using tcpd::Outcome;
using tcpd::Verdict;

namespace {

using Env = testing_support::SessionTestEnv;

// Sends `line` repeatedly without blocking until the socket takes no more: how many went.
int fill(int fd, const std::string& line) {
  int sent = 0;
  std::size_t off = 0;
  for (;;) {
    const ssize_t n = ::send(fd, line.data() + off, line.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
    if (off == line.size()) {
      off = 0;
      ++sent;
    }
  }
  if (off > 0) {  // finish the line under way, waiting for room
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    ::send(fd, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    ++sent;
  }
  return sent;
}

// Reads whatever has come, without waiting: how many reply lines.
int drain_lines(int fd) {
  int lines = 0;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) return lines;
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n' ? 1 : 0;
  }
}

}  // namespace

TEST(Turn, AStreamingClientGivesItsWorkerBackAfterItsShare) {
  Env e;
  auto [s, peer] = testing_support::make_session_pair(10s, 64 * 1024);
  int big = 1 << 20;
  ::setsockopt(peer.get(), SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  const int sent = fill(peer.get(), std::string(999, 'x') + "\n");
  ASSERT_GT(static_cast<std::size_t>(sent) * 1000, tcpd::kTurnInput + 16 * 1024);

  std::string out;
  Verdict v = tcpd::serve(s, e.env, out);
  EXPECT_EQ(v.kind, Verdict::Kind::again);
  EXPECT_GE(s.bytes_in, tcpd::kTurnInput);
  EXPECT_LT(s.bytes_in, tcpd::kTurnInput + 32 * 1024);
  // Later turns answer the rest, in order, and the session then waits for more.
  int turns = 1;
  while (v.kind == Verdict::Kind::again && turns < 100) {
    v = tcpd::serve(s, e.env, out);
    ++turns;
  }
  EXPECT_EQ(v.kind, Verdict::Kind::park);
  EXPECT_EQ(s.replies, static_cast<uint64_t>(sent));
  EXPECT_EQ(drain_lines(peer.get()), sent);
}

TEST(Turn, RepliesThatFindTheSocketFullWaitInTheSessionAndGoOutLater) {
  Env e;
  e.config.mode = tcpd::Mode::echo;
  auto [s, peer] = testing_support::make_session_pair(10s, 64 * 1024);
  const std::string line = std::string(20000, 'y') + "\n";
  // The client sends and never reads: sooner or later a reply finds no room.
  std::string out;
  Verdict v{Verdict::Kind::park};
  int sent = 0;
  for (int i = 0; i < 200 && !s.unsent; ++i) {
    ASSERT_EQ(::send(peer.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT),
              static_cast<ssize_t>(line.size()));
    ++sent;
    v = tcpd::serve(s, e.env, out);
  }
  ASSERT_TRUE(s.unsent);
  EXPECT_EQ(v.kind, Verdict::Kind::park);
  EXPECT_GT(s.unsent->replies, 0U);
  EXPECT_LE(s.unsent->bytes.size(), tcpd::kReplyBuffer + line.size());
  EXPECT_LT(s.unsent->deadline, Clock::time_point::max());
  EXPECT_EQ(tcpd::park_deadline(s).at, s.unsent->deadline);
  // Still no room: parked again, without blocking.
  const auto start = Clock::now();
  EXPECT_EQ(tcpd::serve(s, e.env, out).kind, Verdict::Kind::park);
  EXPECT_LT(Clock::now() - start, 100ms);

  // The client reads; the next turn sends what waited and every reply is counted once.
  int lines = 0;
  for (int i = 0; i < 100 && (lines < sent); ++i) {
    lines += drain_lines(peer.get());
    v = tcpd::serve(s, e.env, out);
    pollfd p{peer.get(), POLLIN, 0};
    ::poll(&p, 1, 10);
  }
  lines += drain_lines(peer.get());
  EXPECT_EQ(lines, sent);
  EXPECT_EQ(s.replies, static_cast<uint64_t>(sent));
  EXPECT_FALSE(s.unsent);
  EXPECT_EQ(v.kind, Verdict::Kind::park);
}

// A reply that cannot go out within the io timeout ends the session.
TEST(Turn, UnsentRepliesPastTheirDeadlineEndTheSession) {
  Env e;
  e.config.mode = tcpd::Mode::echo;
  e.config.io_timeout = 50ms;
  auto [s, peer] = testing_support::make_session_pair(10s, 64 * 1024);
  const std::string line = std::string(20000, 'y') + "\n";
  std::string out;
  for (int i = 0; i < 200 && !s.unsent; ++i) {
    ::send(peer.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    tcpd::serve(s, e.env, out);
  }
  ASSERT_TRUE(s.unsent);
  std::this_thread::sleep_for(60ms);
  const Verdict v = tcpd::serve(s, e.env, out);
  EXPECT_EQ(v.kind, Verdict::Kind::close);
  EXPECT_EQ(v.outcome, Outcome::io_timeout);
}

// Many small requests whose replies overflow the socket part-way through one read: every reply
// still goes out, once, in order.
TEST(Turn, NoReplyIsLostWhenTheSocketFillsPartWayThroughABatch) {
  Env e;
  e.config.reply = std::string(4096, 'r');
  auto [s, peer] = testing_support::make_session_pair(10s, 64 * 1024);
  const int requests = 2000;
  const std::string lines(requests, '\n');
  ASSERT_EQ(::send(peer.get(), lines.data(), lines.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(lines.size()));
  std::string out;
  int got = 0;
  for (int i = 0; i < 10000 && got < requests; ++i) {
    tcpd::serve(s, e.env, out);
    got += drain_lines(peer.get());
  }
  EXPECT_EQ(got, requests);
  EXPECT_EQ(s.replies, static_cast<uint64_t>(requests));
}

// Bytes that arrive while a session waits for room to write spend their event on a turn that
// can only try the write (edge-triggered, no other event follows on TCP); once the replies are
// out, the turn reads before it parks, even when it has answered requests meanwhile.
TEST(Turn, InputThatArrivedWhileRepliesWaitedIsReadOnceTheyAreOut) {
  Env e;
  auto [s, peer] = testing_support::make_session_pair(10s, 64 * 1024);
  // As a turn that found the socket full leaves it: a reply unsent, two requests read and not
  // answered yet.
  s.line_client = true;
  s.replies = 1;
  s.framer.append("a\nb\n");
  s.unsent = std::make_unique<tcpd::Unsent>();
  s.unsent->bytes = "Hello from the server!\n";
  s.unsent->replies = 1;
  s.unsent->deadline = Clock::now() + 5s;
  ASSERT_EQ(::send(peer.get(), "tail\n", 5, MSG_NOSIGNAL), 5);  // its event was spent
  std::string out;
  EXPECT_EQ(tcpd::serve(s, e.env, out).kind, Verdict::Kind::park);
  EXPECT_EQ(s.replies, 5U);  // the earlier one, the unsent one, a, b, and tail
  EXPECT_EQ(drain_lines(peer.get()), 4);
}
