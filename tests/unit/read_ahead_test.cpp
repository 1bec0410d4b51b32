// A worker's read ahead (read_ahead(), then serve()) on socketpairs, no server: what it read is
// answered, how the stream ended reaches serve() once, and finding nothing changes nothing.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "session.hpp"
#include "session_pair.hpp"

using namespace std::chrono_literals;
using tcpd::Clock;
using tcpd::Outcome;
using tcpd::Session;
using tcpd::Verdict;

namespace {

using Env = testing_support::SessionTestEnv;

testing_support::SessionPair make_pair() {
  return testing_support::make_session_pair(std::chrono::seconds(10), 64 * 1024);
}

void send_all(int fd, const std::string& data) {
  ASSERT_EQ(::send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// The reply lines `fd` receives: reads until `want` have come or `limit` passes.
int replies(int fd, int want, std::chrono::milliseconds limit = 2s) {
  const auto end = Clock::now() + limit;
  int lines = 0;
  char buf[65536];
  while (lines < want && Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) lines += buf[i] == '\n' ? 1 : 0;
  }
  return lines;
}

}  // namespace

TEST(ReadAhead, WhatItReadIsAnswered) {
  Env e;
  auto [s, peer] = make_pair();
  send_all(peer.get(), "one\ntwo\n");
  tcpd::LineFramer::Buffer buffer;
  tcpd::read_ahead(s, buffer, e.env);
  EXPECT_EQ(s.bytes_in, 8U);
  std::string out;
  const Verdict v = tcpd::serve(s, e.env, out);
  EXPECT_EQ(v.kind, Verdict::Kind::park);
  EXPECT_EQ(s.replies, 2U);
  EXPECT_EQ(replies(peer.get(), 2), 2);
}

// A reset is reported by the kernel once: a second read would find a plain end of stream, and
// the session would count as ended without a request instead of reset.
TEST(ReadAhead, AResetReachesServe) {
  Env e;
  auto [s, peer] = make_pair();
  send_all(s.fd.get(), "unread by the peer");
  peer.reset();  // closing with unread input: the session's next read fails with ECONNRESET
  tcpd::LineFramer::Buffer buffer;
  tcpd::read_ahead(s, buffer, e.env);
  std::string out;
  const Verdict v = tcpd::serve(s, e.env, out);
  EXPECT_EQ(v.kind, Verdict::Kind::close);
  EXPECT_EQ(v.outcome, Outcome::reset);
}

TEST(ReadAhead, TheEndOfTheStreamReachesServe) {
  Env e;
  auto [s, peer] = make_pair();
  peer.reset();
  tcpd::LineFramer::Buffer buffer;
  tcpd::read_ahead(s, buffer, e.env);
  std::string out;
  const Verdict v = tcpd::serve(s, e.env, out);
  EXPECT_EQ(v.kind, Verdict::Kind::close);
  EXPECT_EQ(v.outcome, Outcome::no_request);
}

// Finding nothing (a stale event) is not kept: serve() reads for itself, so a request that
// arrives in between is answered, not parked unread.
TEST(ReadAhead, FindingNothingIsNotKept) {
  Env e;
  auto [s, peer] = make_pair();
  tcpd::LineFramer::Buffer buffer;
  tcpd::read_ahead(s, buffer, e.env);
  EXPECT_EQ(s.bytes_in, 0U);
  send_all(peer.get(), "late\n");
  std::string out;
  tcpd::serve(s, e.env, out);
  EXPECT_EQ(s.replies, 1U);
  EXPECT_EQ(replies(peer.get(), 1), 1);
}

// A read ahead that fills its chunk is not the last: the rest is in the socket already, and no
// event would come for it once the session is parked again (edge-triggered).
TEST(ReadAhead, AFullReadIsNotTheLast) {
  Env e;
  auto [s, peer] = make_pair();
  const std::string line = std::string(31, 'x') + "\n";
  std::string burst;
  for (std::size_t i = 0; i < 2 * tcpd::kReadAheadChunk / line.size(); ++i) burst += line;
  send_all(peer.get(), burst);
  tcpd::LineFramer::Buffer buffer;
  tcpd::read_ahead(s, buffer, e.env);
  EXPECT_EQ(s.bytes_in, tcpd::kReadAheadChunk);  // ends exactly at a newline
  std::string out;
  const Verdict v = tcpd::serve(s, e.env, out);
  EXPECT_EQ(v.kind, Verdict::Kind::park);
  const auto want = static_cast<int>(burst.size() / line.size());
  EXPECT_EQ(s.replies, static_cast<uint64_t>(want));
  EXPECT_EQ(replies(peer.get(), want), want);
}
