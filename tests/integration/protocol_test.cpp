// The wire protocol over real loopback sockets against an in-process server.
#include <gtest/gtest.h>

#include <thread>

#include "net.hpp"

using namespace testing_support;
using tcpd::Outcome;

namespace {

struct Protocol : ::testing::Test {
  tcpd::ServerConfig cfg = test_config();
};

}  // namespace

TEST_F(Protocol, GreetsEveryLineOnOneSession) {
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.valid());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.send("hello " + std::to_string(i) + "\n"));
    EXPECT_EQ(c.line(), "Hello from the server!\n");
  }
}

TEST_F(Protocol, CustomReply) {
  cfg.reply = "howdy";
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("x\n"));
  EXPECT_EQ(c.line(), "howdy\n");
}

TEST_F(Protocol, CrLfIsOneTerminator) {
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("abc\r\n"));
  EXPECT_EQ(c.line(), "abc\n");
  ASSERT_TRUE(c.send("lone\rcr\n"));
  EXPECT_EQ(c.line(), "lone\rcr\n");
}

TEST_F(Protocol, EchoIsBinarySafe) {
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  std::string every;
  for (int b = 0; b < 256; ++b) {
    if (b != '\n' && b != '\r') every.push_back(static_cast<char>(b));
  }
  every += std::string("\0\xff\xfe\xc3\x28", 5);  // NUL, high bytes, invalid UTF-8
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send(every + "\n"));
  EXPECT_EQ(c.line(), every + "\n");
}

TEST_F(Protocol, PipelinedRequestsAnsweredInOrder) {
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += "req" + std::to_string(i) + "\n";
  ASSERT_TRUE(c.send(batch));
  for (int i = 0; i < 100; ++i) ASSERT_EQ(c.line(), "req" + std::to_string(i) + "\n");
}

// A parked session is registered edge-triggered: one event for a burst, however large. A burst
// of complete lines longer than one read (16 KiB), whose first read ends exactly at a newline,
// once left the rest unread in the socket with no event to come for it: 512 of these 1,024
// requests were answered, and the session waited for its idle timeout.
TEST_F(Protocol, BurstLongerThanOneReadIsAnsweredInFull) {
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("first\n"));  // served and parked: registered from now on
  ASSERT_EQ(c.line(), "Hello from the server!\n");
  const std::string line = std::string(31, 'x') + "\n";  // 16 KiB is 512 of them exactly
  std::string burst;
  for (int i = 0; i < 1024; ++i) burst += line;
  ASSERT_TRUE(c.send(burst));
  for (int i = 0; i < 1024; ++i) ASSERT_EQ(c.line(2s), "Hello from the server!\n") << "reply " << i;
}

TEST_F(Protocol, EmptyLinesAreRequests) {
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("\n\r\n"));
  EXPECT_EQ(c.line(), "Hello from the server!\n");
  EXPECT_EQ(c.line(), "Hello from the server!\n");
}

TEST_F(Protocol, OneShotClientGetsReplyWithoutNewlineThenClose) {
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send("Hello from the client!"));  // exactly what the tutorial client sends
  EXPECT_EQ(c.until_eof(), "Hello from the server!");
  // The pause is 20 ms; a second is a generous bound that still catches "waits for a timeout".
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST_F(Protocol, HalfCloseEndsAOneShotRequest) {
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("no newline here"));
  c.shutdown_write();
  EXPECT_EQ(c.until_eof(), "no newline here");
}

TEST_F(Protocol, HalfCloseAfterLinesAnswersTheLastPartialLine) {
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("a\nb"));
  c.shutdown_write();
  EXPECT_EQ(c.until_eof(), "a\nb\n");
}

TEST_F(Protocol, LineClientPartialRequestWaitsForItsNewline) {
  cfg.mode = tcpd::Mode::echo;
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("first\n"));
  ASSERT_EQ(c.line(), "first\n");
  ASSERT_TRUE(c.send("sec"));
  // Well past the one-shot pause: a line client is not answered early.
  EXPECT_EQ(c.line(300ms), std::nullopt);
  ASSERT_TRUE(c.send("ond\n"));
  EXPECT_EQ(c.line(), "second\n");
}

TEST_F(Protocol, TooLongRequestGetsErrorThenClose) {
  cfg.max_message = 10;
  InProcessServer srv(cfg);
  Client ok = Client::connect(srv.port());
  ASSERT_TRUE(ok.send("0123456789\r\n"));  // exactly the limit: \r\n does not count
  EXPECT_EQ(ok.line(), "Hello from the server!\n");

  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("01234567890\n"));
  EXPECT_EQ(c.until_eof(), "ERR too long\n");
  srv.stop();
  EXPECT_EQ(srv.server().stats().of(Outcome::too_long), 1u);
}

TEST_F(Protocol, DelayHoldsEachReply) {
  cfg.delay = std::chrono::milliseconds(150);
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send("a\nb\n"));
  EXPECT_EQ(c.line(), "Hello from the server!\n");
  EXPECT_EQ(c.line(), "Hello from the server!\n");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 290ms);
}

TEST_F(Protocol, CountersAddUpToAccepted) {
  InProcessServer srv(cfg);
  {
    Client a = Client::connect(srv.port());
    ASSERT_TRUE(a.send("x\ny\n"));
    ASSERT_TRUE(a.line());
    ASSERT_TRUE(a.line());
    Client b = Client::connect(srv.port());  // connects and leaves without a request
    Client s = Client::connect(srv.port());
    ASSERT_TRUE(s.send("seed"));
    ASSERT_TRUE(s.until_eof());
  }
  ASSERT_TRUE(eventually([&] { return srv.server().stats().ended() == 3; }));
  srv.stop();
  auto st = srv.server().stats();
  EXPECT_EQ(st.accepted, 3u);
  EXPECT_EQ(st.ended(), st.accepted);
  EXPECT_EQ(st.of(Outcome::served), 2u);
  EXPECT_EQ(st.of(Outcome::no_request), 1u);
  EXPECT_EQ(st.requests, 3u);
}

TEST_F(Protocol, AcceptorOutlivesQuietPeriods) {
  // The acceptor's set has a timer for new connections' idle deadlines, and the acceptor
  // sleeps through quiet periods longer than them: waking for nothing must be a non-event. (The
  // quiet period is the scenario, so this one sleeps.)
  cfg.idle_timeout = 100ms;
  InProcessServer srv(cfg);
  std::this_thread::sleep_for(350ms);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("still here?\n"));
  EXPECT_EQ(c.line(), "Hello from the server!\n");
}
