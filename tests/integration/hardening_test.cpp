// Slow, idle, hostile and broken clients: none of them takes the service down.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "fake_server.hpp"
#include "net.hpp"
#include "process.hpp"

using namespace testing_support;
using tcpd::Outcome;

namespace {

std::chrono::milliseconds since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t);
}

// user+system CPU seconds of a process, from /proc.
double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), {});
  std::istringstream rest(all.substr(all.rfind(')') + 2));
  std::string field;
  long ut = 0, st = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) ut = std::stol(field);
    if (i == 15) st = std::stol(field);
  }
  return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

TEST(Hardening, IdleClientsHoldingEveryWorkerDoNotDelayANewClient) {
  auto cfg = test_config();
  cfg.workers = 2;
  cfg.idle_timeout = 1500ms;
  InProcessServer srv(cfg);
  std::vector<Client> idle;
  for (int i = 0; i < 2; ++i) idle.push_back(Client::connect(srv.port()));
  ASSERT_TRUE(eventually([&] { return srv.server().stats().accepted == 2; }));
  const auto start = std::chrono::steady_clock::now();
  {
    Client fresh = Client::connect(srv.port());
    ASSERT_TRUE(fresh.send("hi\n"));
    EXPECT_EQ(fresh.line(), "Hello from the server!\n");
    EXPECT_LT(since(start), 700ms);  // well within the idle timeout
  }

  // The idle ones are closed at their idle deadline, without a byte written.
  for (auto& c : idle) {
    EXPECT_TRUE(c.closed_within(5s));
    EXPECT_EQ(c.rest(), "");
  }
  EXPECT_GE(since(start), 1000ms);
  srv.stop();
  EXPECT_EQ(srv.server().stats().of(Outcome::idle_timeout), 2u);
}

TEST(Hardening, TricklingRequestMustArriveWithinTheIoTimeout) {
  auto cfg = test_config();
  cfg.io_timeout = 600ms;
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("line\n"));  // a line client: the one-shot pause no longer applies
  ASSERT_TRUE(c.line());
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  // One byte every 100 ms: each read is quick, but the whole request is late.
  for (int i = 0; i < 50 && !closed; ++i) {
    if (!c.send("x")) break;
    closed = c.closed_within(100ms);
  }
  EXPECT_TRUE(closed || c.closed_within(3s));
  EXPECT_GE(since(start), 500ms);
  EXPECT_LT(since(start), 3000ms);
  EXPECT_EQ(c.rest(), "");
  srv.stop();
  EXPECT_EQ(srv.server().stats().of(Outcome::io_timeout), 1u);
}

TEST(Hardening, ClientThatNeverReadsIsCutOff) {
  auto cfg = test_config();
  cfg.mode = tcpd::Mode::echo;
  cfg.io_timeout = 500ms;
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  int small = 4096;
  ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const std::string req(60000, 'x');
  // Send echo requests without reading replies until the server stops taking them.
  for (int i = 0; i < 2000; ++i) {
    if (!c.send(req + "\n", 200ms)) break;
    if (srv.server().stats().of(Outcome::io_timeout) == 1) break;
  }
  EXPECT_TRUE(eventually([&] { return srv.server().stats().of(Outcome::io_timeout) == 1; }, 10s));
  // Everyone else is still served.
  Client other = Client::connect(srv.port());
  ASSERT_TRUE(other.send("ping\n"));
  EXPECT_EQ(other.line(), "ping\n");
}

TEST(Hardening, BurstFarBeyondTheQueueGetsFastBusyAnswers) {
  auto cfg = test_config();
  cfg.workers = 1;
  cfg.queue = 2;
  cfg.delay = 300ms;
  InProcessServer srv(cfg);
  std::vector<Client> burst;
  for (int i = 0; i < 60; ++i) {
    burst.push_back(Client::connect(srv.port()));
    ASSERT_TRUE(burst.back().send("x\n"));
  }
  int busy = 0, served = 0;
  for (auto& c : burst) {
    auto reply = c.line(10s);
    ASSERT_TRUE(reply) << "every client gets an answer, not a hang or a silent reset";
    if (*reply == "ERR busy\n") ++busy;
    if (*reply == "Hello from the server!\n") ++served;
  }
  EXPECT_EQ(busy + served, 60);
  EXPECT_GE(busy, 50);
  burst.clear();
  // Normal service resumes once the burst has passed.
  Client after = Client::connect(srv.port());
  ASSERT_TRUE(after.send("again\n"));
  EXPECT_EQ(after.line(5s), "Hello from the server!\n");
  srv.stop();
  auto st = srv.server().stats();
  EXPECT_EQ(st.of(Outcome::busy), static_cast<uint64_t>(busy));
  EXPECT_EQ(st.ended(), st.accepted);
}

TEST(Hardening, HostileBytesNeverHurtOtherClients) {
  auto cfg = test_config();
  cfg.workers = 4;
  InProcessServer srv(cfg);
  Client bystander = Client::connect(srv.port());
  ASSERT_TRUE(bystander.send("before\n"));
  ASSERT_TRUE(bystander.line());

  {
    Client c = Client::connect(srv.port());
    ASSERT_TRUE(c.send(std::string("\0\0\n\xff\xfe\xc3\x28\n\r\r\n\n", 12)));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(c.line(), "Hello from the server!\n");
  }
  {
    Client c = Client::connect(srv.port());  // a megabyte with no newline
    const std::string mb(1 << 20, 'A');
    c.send(mb, 2s);  // the server may close before it has all of it
    EXPECT_TRUE(c.closed_within(5s));
    EXPECT_EQ(c.rest(), "ERR too long\n");
  }
  {
    Client c = Client::connect(srv.port());  // reset in the middle of a request
    ASSERT_TRUE(c.send("half a req"));
    c.reset();
  }
  for (int i = 0; i < 2000; ++i) Client::connect(srv.port());  // connect, then close at once

  ASSERT_TRUE(bystander.send("after\n"));
  EXPECT_EQ(bystander.line(), "Hello from the server!\n");
  // Every connection is accepted (closed ones wait in the kernel's queue) and ends, but the
  // bystander's.
  EXPECT_TRUE(eventually(
      [&] {
        auto s = srv.server().stats();
        return s.accepted == 2004 && s.ended() == 2003;
      },
      20s));
  auto st = srv.server().stats();
  EXPECT_EQ(st.accepted, 2004u);
  EXPECT_EQ(st.of(Outcome::too_long), 1u);
}

TEST(Hardening, NoDescriptorLeaksAcrossThousandsOfConnections) {
  const int before_server = open_fds();
  {
    auto cfg = test_config();
    InProcessServer srv(cfg);
    const int before = open_fds();
    for (int i = 0; i < 1000; ++i) {
      Client c = Client::connect(srv.port());
      if (i % 3 == 0) c.send("x\n");
      if (i % 3 == 1) c.send("partial");
      if (i % 5 == 0) c.reset();
    }
    // Give lingering closes (at most 2 s) time to finish.
    EXPECT_TRUE(eventually([&] { return open_fds() <= before; }, 10s))
        << "open descriptors: before " << before << ", now " << open_fds();
    srv.stop();
    auto st = srv.server().stats();
    EXPECT_EQ(st.ended(), st.accepted);
  }
  // Nothing the server opened outlives it: listener, eventfds, epoll, spare, sessions.
  EXPECT_EQ(open_fds(), before_server);
}

TEST(Hardening, OutOfDescriptorsShedsWithoutSpinningAndRecovers) {
  // 40 descriptors: the server's own use is about a dozen, so idle clients exhaust it quickly.
  Tcpd srv({"--quiet", "--idle-timeout-ms", "60000"}, 40);
  std::vector<Client> held;
  int shed = 0;
  for (int i = 0; i < 60; ++i) {
    held.push_back(Client::connect(srv.port));
    ASSERT_TRUE(held.back().valid());
  }
  // Those beyond the limit are turned away with ERR busy rather than left hanging.
  for (auto& c : held) {
    if (c.closed_within(300ms) && c.rest() == "ERR busy\n") ++shed;
  }
  EXPECT_GT(shed, 0);
  // Still at the limit: the acceptor must not spin on EMFILE.
  const double cpu0 = cpu_seconds(srv.proc->pid());
  std::vector<Client> more;
  for (int i = 0; i < 20; ++i) more.push_back(Client::connect(srv.port));
  std::this_thread::sleep_for(1s);
  EXPECT_LT(cpu_seconds(srv.proc->pid()) - cpu0, 0.5);
  held.clear();
  more.clear();
  // Descriptors free up: normal service.
  bool served = eventually(
      [&] {
        Client c = Client::connect(srv.port);
        return c.send("hi\n") && c.line(2s) == "Hello from the server!\n";
      },
      15s);
  EXPECT_TRUE(served);
  srv.proc->signal(SIGTERM);
  auto r = srv.proc->wait(15s);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.err.find("out of file descriptors"), std::string::npos) << r.err;
}

TEST(Hardening, PeerVanishingMidReplyDoesNotKillTheServer) {
  auto cfg = test_config();
  cfg.delay = 100ms;
  InProcessServer srv(cfg);
  for (int i = 0; i < 20; ++i) {
    Client c = Client::connect(srv.port());
    ASSERT_TRUE(c.send("x\n"));
    c.reset();  // gone before the reply: the write meets EPIPE/ECONNRESET, never SIGPIPE
  }
  Client ok = Client::connect(srv.port());
  ASSERT_TRUE(ok.send("y\n"));
  EXPECT_EQ(ok.line(), "Hello from the server!\n");
}

TEST(Hardening, ClientTimeoutBoundsAServerThatNeverAnswers) {
  FakeServer stall(FakeServer::Kind::stall);
  const auto start = std::chrono::steady_clock::now();
  auto r = run({TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(stall.port()),
                "--timeout-ms", "300"},
               20s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(
      r.err.find("no reply from 127.0.0.1:" + std::to_string(stall.port()) + " within 300 ms"),
      std::string::npos)
      << r.err;
  EXPECT_LT(since(start), 5000ms);
}

TEST(Hardening, ClientReportsAReset) {
  FakeServer rst(FakeServer::Kind::reset);
  auto r = run({TCPC_BIN, "--host", "127.0.0.1", "--port", std::to_string(rst.port())}, 20s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("reset"), std::string::npos) << r.err;
}
