// tcpc against servers that would keep it running or growing: one that trickles a reply, one
// that floods without a newline, a --rate far beyond what the server does; and its JSON with
// strings that need escaping.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

#include "fake_server.hpp"
#include "net.hpp"
#include "process.hpp"
#include "tcpc_json.hpp"

using namespace testing_support;
using Clock = std::chrono::steady_clock;

TEST(TcpcBounds, TimeoutBoundsTheWholeReplyFromATricklingServer) {
  FakeServer trickle(FakeServer::Kind::trickle);
  const auto start = Clock::now();
  auto r = run(tcpc({"--host", "127.0.0.1", "--port", std::to_string(trickle.port()), "--msg", "hi",
                     "--timeout-ms", "500"}),
               20s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_NE(
      r.err.find("no reply from 127.0.0.1:" + std::to_string(trickle.port()) + " within 500 ms"),
      std::string::npos)
      << r.err;
}

TEST(TcpcBounds, AReplyLongerThanMaxReplyIsAFailureNotMemory) {
  FakeServer flood(FakeServer::Kind::flood);
  const std::string port = std::to_string(flood.port());
  auto single = run(tcpc({"--host", "127.0.0.1", "--port", port, "--msg", "hi"}), 20s);
  EXPECT_EQ(single.exit_code, 1) << single.err;
  EXPECT_NE(single.err.find("longer than --max-reply 1048576 bytes"), std::string::npos)
      << single.err;

  auto load = run(tcpc({"--host", "127.0.0.1", "--port", port, "--count", "2", "--json",
                        "--max-reply", "65536"}),
                  20s);
  ASSERT_FALSE(load.timed_out);
  auto j = parse_json(load.out);
  EXPECT_EQ(j["reply_too_long"], 2) << load.out;
  EXPECT_LT(j["client_max_rss_kib"].get<long>(), 64 * 1024) << load.out;
  EXPECT_LT(j["seconds"].get<double>(), 5.0) << load.out;
}

// An idle keep-alive connection that the server floods is closed once the unasked-for bytes
// pass --max-reply, and the next request goes on a new connection.
TEST(TcpcBounds, AServerFloodingAnIdleConnectionIsCutOff) {
  FakeServer flood(FakeServer::Kind::flood, "ok\n");
  auto r = run(tcpc({"--host", "127.0.0.1", "--port", std::to_string(flood.port()), "--keepalive",
                     "--count", "3", "--json", "--max-reply", "65536"}),
               30s);
  ASSERT_FALSE(r.timed_out);
  auto j = parse_json(r.out);
  EXPECT_GE(j["ok"].get<int>(), 1) << r.out;
  EXPECT_EQ(j["requests"], 3) << r.out;
  EXPECT_LT(j["client_max_rss_kib"].get<long>(), 64 * 1024) << r.out;
  EXPECT_LT(j["seconds"].get<double>(), 10.0) << r.out;
}

// A --rate far beyond the server ends at its --duration (plus the timeout of what is in flight),
// and what it could not send is reported, not sent late.
TEST(TcpcBounds, ARateFarAboveCapacityEndsOnTimeAndReportsWhatWasNotSent) {
  Tcpd srv({"--quiet", "--workers", "1", "--delay-ms", "5"});
  const auto start = Clock::now();
  auto r = run(tcpc({"--host", "127.0.0.1", "--port", std::to_string(srv.port), "--keepalive",
                     "--concurrency", "4", "--rate", "100000", "--duration", "1", "--timeout-ms",
                     "1000", "--json"}),
               30s);
  const auto took = Clock::now() - start;
  ASSERT_FALSE(r.timed_out);
  EXPECT_LT(took, 4s);
  auto j = parse_json(r.out);
  EXPECT_GT(j["unsent"].get<long>(), 90000) << r.out;
  EXPECT_EQ(j["requests"].get<long>() + j["unsent"].get<long>(), 100000) << r.out;
  EXPECT_NE(r.err.find("scheduled requests were not sent by the end"), std::string::npos) << r.err;
}

TEST(TcpcBounds, JsonStringsAreEscapedWhateverTheyHold) {
  auto r = run(tcpc({"--host", "bad\x01host\"\xff", "--port", "9", "--count", "1", "--json",
                     "--timeout-ms", "500"}),
               20s);
  ASSERT_FALSE(r.out.empty()) << r.err;
  nlohmann::json j;
  ASSERT_NO_THROW(j = parse_json(r.out)) << r.out;
  const std::string target = j["target"];
  EXPECT_EQ(target.substr(0, 9), "bad\x01host\"");
}

// Every JSON log line is strict UTF-8 JSON: the instance name, peers, and messages.
TEST(TcpdLogs, EveryJsonLineParsesStrictly) {
  Tcpd srv({"--log-format", "json", "--name", "n\xc3\xa4me \"quoted\""});
  for (int i = 0; i < 3; ++i) {
    Client c = Client::connect(srv.port);
    ASSERT_TRUE(c.send("x\n"));
    ASSERT_TRUE(c.line());
  }
  srv.proc->signal(SIGTERM);
  auto r = srv.proc->wait(20s);
  std::size_t lines = 0;
  std::size_t at = 0;
  while (at < r.err.size()) {
    const auto nl = r.err.find('\n', at);
    const std::string line = r.err.substr(at, nl - at);
    at = nl == std::string::npos ? r.err.size() : nl + 1;
    if (line.empty()) continue;
    ++lines;
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
    EXPECT_EQ(j["instance"], "n\xc3\xa4me \"quoted\"") << line;
  }
  EXPECT_GE(lines, 5U);
}
