// Signals: the drain, its bound, the second signal, SIGUSR1.
#include <gtest/gtest.h>
#include <signal.h>

#include <regex>
#include <thread>
#include <vector>

#include "net.hpp"
#include "process.hpp"

using namespace testing_support;

namespace {

long counter(const std::string& text, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(" " + key + "=(\\d+)"))) return -1;
  return std::stol(m[1]);
}

}  // namespace

TEST(Lifecycle, SigtermDrainsQueuedAndInFlightRequestsThenExitsZero) {
  Tcpd srv({"--quiet", "--workers", "2", "--delay-ms", "600"});
  std::vector<Client> busy;
  for (int i = 0; i < 4; ++i) {  // two in flight, two waiting in the queue
    busy.push_back(Client::connect(srv.port));
    ASSERT_TRUE(busy.back().send("work\n"));
  }
  Client idle = Client::connect(srv.port);
  std::this_thread::sleep_for(200ms);  // let the requests reach the server
  srv.proc->signal(SIGTERM);
  for (auto& c : busy) EXPECT_EQ(c.line(10s), "Hello from the server!\n");
  for (auto& c : busy) EXPECT_TRUE(c.closed_within(5s));
  EXPECT_TRUE(idle.closed_within(5s));
  EXPECT_EQ(idle.rest(), "");
  auto r = srv.proc->wait(15s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // New connections are refused once it has stopped accepting.
  EXPECT_FALSE(Client::connect(srv.port, 1s).valid());
  ASSERT_NE(r.err.find("summary"), std::string::npos) << r.err;
  EXPECT_EQ(counter(r.err, "accepted"), 5);
  EXPECT_EQ(counter(r.err, "served"), 4);
  EXPECT_EQ(counter(r.err, "shutdown"), 1);
  EXPECT_EQ(counter(r.err, "requests"), 4);
  EXPECT_EQ(counter(r.err, "active"), 0);
}

TEST(Lifecycle, DrainIsBoundedByTheDrainTimeout) {
  Tcpd srv({"--quiet", "--workers", "1", "--delay-ms", "60000", "--drain-timeout-ms", "300"});
  Client c = Client::connect(srv.port);
  ASSERT_TRUE(c.send("slow\n"));
  std::this_thread::sleep_for(200ms);
  const auto start = std::chrono::steady_clock::now();
  srv.proc->signal(SIGTERM);
  auto r = srv.proc->wait(20s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(counter(r.err, "active"), 0) << r.err;
}

TEST(Lifecycle, SecondSignalExitsAtOnceNonZero) {
  Tcpd srv({"--quiet", "--workers", "1", "--delay-ms", "60000", "--drain-timeout-ms", "60000"});
  Client c = Client::connect(srv.port);
  ASSERT_TRUE(c.send("slow\n"));
  std::this_thread::sleep_for(200ms);
  srv.proc->signal(SIGINT);
  ASSERT_TRUE(srv.proc->wait_stderr("draining", 10s)) << srv.proc->err();
  const auto start = std::chrono::steady_clock::now();
  srv.proc->signal(SIGINT);
  auto r = srv.proc->wait(10s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(Lifecycle, Sigusr1ReportsCountersAndKeepsServing) {
  Tcpd srv({"--quiet"});
  {
    Client c = Client::connect(srv.port);
    ASSERT_TRUE(c.send("a\nb\n"));
    ASSERT_TRUE(c.line());
    ASSERT_TRUE(c.line());
  }
  // The report is a snapshot: ask again until the finished connection shows in it.
  bool reported = eventually(
      [&] {
        srv.proc->signal(SIGUSR1);
        return srv.proc->wait_stderr("stats accepted=1 active=0 requests=2 served=1", 200ms);
      },
      15s);
  EXPECT_TRUE(reported) << srv.proc->err();
  Client c = Client::connect(srv.port);
  ASSERT_TRUE(c.send("still there\n"));
  EXPECT_EQ(c.line(), "Hello from the server!\n");
  srv.proc->signal(SIGTERM);
  EXPECT_EQ(srv.proc->wait(15s).exit_code, 0);
}

TEST(Lifecycle, LogsOneLinePerConnectionUnlessQuiet) {
  Tcpd srv({});
  {
    Client c = Client::connect(srv.port);
    ASSERT_TRUE(c.send("x\n"));
    ASSERT_TRUE(c.line());
  }
  EXPECT_TRUE(srv.proc->wait_stderr("closed: served (1 reply)", 10s)) << srv.proc->err();
  EXPECT_NE(srv.proc->err().find("127.0.0.1:"), std::string::npos);
  srv.proc->signal(SIGTERM);
  EXPECT_EQ(srv.proc->wait(15s).exit_code, 0);
}
