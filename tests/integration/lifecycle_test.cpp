// Signals: the drain, its bound, the second signal, SIGUSR1.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <regex>
#include <thread>
#include <vector>

#include "net.hpp"
#include "proc_stat.hpp"
#include "process.hpp"

using namespace testing_support;

namespace {

// Asks for the counters (SIGUSR1) until the stats line shows `key=value`: the server has got that
// far. Waiting on the server's own account instead of sleeping.
bool reaches(Tcpd& srv, const std::string& key, long value) {
  return eventually(
      [&] {
        srv.proc->signal(SIGUSR1);
        return srv.proc->wait_stderr(" " + key + "=" + std::to_string(value) + " ", 100ms);
      },
      15s);
}

// The last `key=N` in `text`: the summary's, when SIGUSR1 lines came before it.
long counter(const std::string& text, const std::string& key) {
  const std::regex re(" " + key + "=(\\d+)");
  long last = -1;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    last = std::stol((*it)[1]);
  }
  return last;
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
  ASSERT_TRUE(reaches(srv, "bytes_in", 4 * 5)) << srv.proc->err();  // every "work\n" is there
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
  EXPECT_EQ(counter(r.err, "open"), 0);
}

TEST(Lifecycle, DrainIsBoundedByTheDrainTimeout) {
  Tcpd srv({"--quiet", "--workers", "1", "--delay-ms", "60000", "--drain-timeout-ms", "300"});
  Client c = Client::connect(srv.port);
  ASSERT_TRUE(c.send("slow\n"));
  ASSERT_TRUE(reaches(srv, "bytes_in", 5)) << srv.proc->err();
  const auto start = std::chrono::steady_clock::now();
  srv.proc->signal(SIGTERM);
  auto r = srv.proc->wait(20s);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(counter(r.err, "open"), 0) << r.err;
}

// A script's background job (`tcpd &`) starts with SIGINT and SIGQUIT ignored: tcpd still
// drains on SIGINT and dumps core on SIGQUIT.
TEST(Lifecycle, SignalsIgnoredByTheParentStillWork) {
  const std::string cmd = std::string("trap '' INT QUIT; exec ") + TCPD_BIN +
                          " --bind 127.0.0.1 --port 0 --quiet --drain-timeout-ms 500";
  {
    Process p({"/bin/sh", "-c", cmd});
    ASSERT_TRUE(p.read_line(10s).has_value());  // listening on ...
    p.signal(SIGINT);
    auto r = p.wait(10s);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("summary"), std::string::npos) << r.err;
  }
  {
    Process p({"/bin/sh", "-c", cmd});
    ASSERT_TRUE(p.read_line(10s).has_value());
    p.signal(SIGQUIT);
    auto r = p.wait(10s);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.signal, SIGQUIT) << r.err;
  }
}

TEST(Lifecycle, SecondSignalExitsAtOnceNonZero) {
  Tcpd srv({"--quiet", "--workers", "1", "--delay-ms", "60000", "--drain-timeout-ms", "60000"});
  Client c = Client::connect(srv.port);
  ASSERT_TRUE(c.send("slow\n"));
  ASSERT_TRUE(reaches(srv, "bytes_in", 5)) << srv.proc->err();
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
        return srv.proc->wait_stderr("stats accepted=1 open=0 requests=2 served=1", 200ms);
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
  EXPECT_TRUE(srv.proc->wait_stderr("closed: served (1 reply, 2 bytes in, 23 out, ", 10s))
      << srv.proc->err();
  // RFC 3339 UTC with milliseconds, the level, then the text.
  EXPECT_TRUE(std::regex_search(
      srv.proc->err(),
      std::regex(
          R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info tcpd: 127\.0\.0\.1:\d+ closed: served)")))
      << srv.proc->err();
  srv.proc->signal(SIGTERM);
  EXPECT_EQ(srv.proc->wait(15s).exit_code, 0);
}

TEST(Lifecycle, WorkersThatCannotAllStartAreAnErrorNotAHang) {
  // Regression: the pool's failure escaped past the drain, ~WorkerPool waited for ever on the
  // workers already blocked in pop(), and tcpd said "listening on" and then answered nobody.
  // Root ignores RLIMIT_NPROC, so the child runs as nobody with room for ~30 threads.
  Spawn how;
  how.as_nobody = true;
  how.limit_procs = 30;
  Process p(Process::tcpd_argv({"--workers", "64"}), how);
  auto r = p.wait(30s);
  if (r.exit_code == 126 || r.exit_code == 127) {
    GTEST_SKIP() << "cannot run " << TCPD_BIN << " as uid 65534 here (exit " << r.exit_code << ")";
  }
  EXPECT_FALSE(r.timed_out) << "tcpd hung instead of failing";
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("tcpd: cannot start 64 workers: Resource temporarily unavailable"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.out.find("listening on"), std::string::npos) << r.out;
}

TEST(Lifecycle, ABlockedLogNeverStallsServingOrSignals) {
  // Regression: with stderr on a pipe nobody reads, a worker blocked in the log write after
  // ~1,400 connections, every other thread waited on the stderr lock (the signal thread
  // included), and tcpd served nobody and ignored SIGTERM.
  Spawn how;
  how.read_stderr = false;
  Tcpd srv({"--drain-timeout-ms", "2000"}, how);  // not quiet: one log line per connection
  for (int i = 0; i < 5000; ++i) {
    Client c = Client::connect(srv.port, 5s);
    ASSERT_TRUE(c.valid()) << "connection " << i;
    ASSERT_TRUE(c.send("x\n")) << "connection " << i;
    ASSERT_EQ(c.line(5s), "Hello from the server!\n") << "connection " << i;
  }
  const auto start = std::chrono::steady_clock::now();
  srv.proc->signal(SIGTERM);
  auto r = srv.proc->wait(20s);
  EXPECT_FALSE(r.timed_out) << "SIGTERM did not end tcpd with its log blocked";
  EXPECT_EQ(r.exit_code, 0);
  // The drain has nothing to wait for; the log gets a bounded flush on top.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2000ms + 3s);
}

TEST(Lifecycle, DroppedLogLinesAreCountedAndReported) {
  // What a blocked sink could not take is counted; once it takes lines again the log says how
  // many were lost, and the SIGUSR1 line carries the count.
  Spawn how;
  how.read_stderr = false;
  Tcpd srv({}, how);
  // ~50-byte lines: 8,000 fill the 64 KiB pipe and the writer's 256 KiB buffer.
  for (int i = 0; i < 8000; ++i) {
    Client c = Client::connect(srv.port, 5s);
    ASSERT_TRUE(c.send("x\n"));
    ASSERT_TRUE(c.line(5s)) << "connection " << i;
  }
  srv.proc->resume_stderr();
  ASSERT_TRUE(srv.proc->wait_stderr("lines dropped", 10s));
  bool reported = eventually(
      [&] {
        srv.proc->signal(SIGUSR1);
        return srv.proc->wait_stderr("stats accepted=8000", 200ms);
      },
      10s);
  ASSERT_TRUE(reported) << srv.proc->err();
  const std::string& err = srv.proc->err();
  const long dropped = counter(err.substr(err.find("stats accepted=8000")), "log_dropped");
  EXPECT_GT(dropped, 0) << err.substr(err.find("stats accepted=8000"));
  EXPECT_LT(dropped, 8000);
}

TEST(Lifecycle, DrainServesConnectionsStillInTheListenQueue) {
  // Regression: shutdown() on the listener reset every connection that had completed the
  // handshake but was not accepted yet (300 of 300 after SIGSTOP / connect / SIGTERM).
  Tcpd srv({"--quiet", "--workers", "2"});
  srv.proc->signal(SIGSTOP);
  std::vector<Client> queued;
  for (int i = 0; i < 100; ++i) {
    queued.push_back(Client::connect(srv.port, 2s));  // the kernel completes the handshake
    ASSERT_TRUE(queued.back().valid());
    ASSERT_TRUE(queued.back().send("queued\n"));
  }
  srv.proc->signal(SIGTERM);  // pending until it runs again: the drain starts first thing
  srv.proc->signal(SIGCONT);
  int answered = 0;
  for (auto& c : queued) answered += c.line(10s) == "Hello from the server!\n" ? 1 : 0;
  EXPECT_EQ(answered, 100);
  auto r = srv.proc->wait(15s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(counter(r.err, "accepted"), 100) << r.err;
  EXPECT_EQ(counter(r.err, "served"), 100) << r.err;
  EXPECT_EQ(counter(r.err, "requests"), 100) << r.err;
  // And the listener is gone: new connections are refused, not queued.
  EXPECT_FALSE(Client::connect(srv.port, 1s).valid());
}

TEST(Lifecycle, ConnectionInTheListenQueueWhoseRequestFollowsIsServed) {
  // Connected before the drain, request sent just after it began: still answered.
  Tcpd srv({"--quiet", "--workers", "1"});
  srv.proc->signal(SIGSTOP);
  Client c = Client::connect(srv.port, 2s);
  ASSERT_TRUE(c.valid());
  srv.proc->signal(SIGTERM);
  srv.proc->signal(SIGCONT);
  ASSERT_TRUE(srv.proc->wait_stderr("draining", 10s));  // the request arrives after that
  ASSERT_TRUE(c.send("late\n"));
  EXPECT_EQ(c.line(5s), "Hello from the server!\n");
  EXPECT_EQ(srv.proc->wait(15s).exit_code, 0);
}

TEST(Lifecycle, SighupIsLoggedAndIgnored) {
  Tcpd srv({"--quiet"});
  srv.proc->signal(SIGHUP);
  ASSERT_TRUE(srv.proc->wait_stderr("SIGHUP", 10s)) << srv.proc->err();
  Client c = Client::connect(srv.port);
  ASSERT_TRUE(c.send("still there\n"));
  EXPECT_EQ(c.line(), "Hello from the server!\n");
  srv.proc->signal(SIGTERM);
  EXPECT_EQ(srv.proc->wait(15s).exit_code, 0);
}
