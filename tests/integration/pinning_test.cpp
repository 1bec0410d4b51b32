// Clients that try to keep workers from everyone else (a stream of requests, replies never read,
// bytes trickled without a newline) and clients that close right after their last request: a
// good client is still answered promptly, and every session ends with its one outcome.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "net.hpp"
#include "process.hpp"

using namespace testing_support;
using tcpd::Outcome;
using Clock = std::chrono::steady_clock;

namespace {

std::chrono::milliseconds since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t);
}

// A keep-alive client asking once every few milliseconds for `length`: its worst latency.
struct Probe {
  std::chrono::microseconds worst{0};
  int answered = 0;
  int failed = 0;
};

Probe probe(int port, std::chrono::milliseconds length) {
  Probe p;
  Client c = Client::connect(port);
  if (!c.valid()) return {std::chrono::microseconds::max(), 0, 1};
  const auto end = Clock::now() + length;
  while (Clock::now() < end) {
    const auto start = Clock::now();
    if (!c.send("probe\n") || !c.line(10s)) {
      ++p.failed;
      break;
    }
    ++p.answered;
    p.worst = std::max(p.worst,
                       std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start));
    std::this_thread::sleep_for(3ms);
  }
  return p;
}

int value_after(const std::string& text, const std::string& key) {
  const auto at = text.rfind(" " + key + "=");
  if (at == std::string::npos) return -1;
  return std::stoi(text.substr(at + key.size() + 2));
}

}  // namespace

// A request, then (a moment later, after the session has parked) the last bytes and the
// client's close: answered and closed at once, not at the idle timeout.
TEST(HalfClose, LastRequestAndCloseAfterAPauseAreAnsweredAtOnce) {
  auto cfg = test_config();
  cfg.idle_timeout = 10s;
  InProcessServer srv(cfg);
  Client c = Client::connect(srv.port());
  ASSERT_TRUE(c.send("a\n"));
  ASSERT_EQ(c.line(), "Hello from the server!\n");
  std::this_thread::sleep_for(100ms);
  const auto start = Clock::now();
  ASSERT_TRUE(c.send("b"));
  c.shutdown_write();
  EXPECT_EQ(c.line(3s), "Hello from the server!\n");
  EXPECT_TRUE(c.closed_within(3s));
  EXPECT_LT(since(start), 1000ms);
  EXPECT_TRUE(eventually([&] { return srv.server().stats().of(Outcome::served) == 1; }));
  EXPECT_EQ(srv.server().stats().of(Outcome::idle_timeout), 0U);
}

// Whatever the interleaving of the last request, its reply and the close: 100 clients, 10 at a
// time, each closing right after its second request.
TEST(HalfClose, ClientsClosingRightAfterTheirLastRequestAreAllServedPromptly) {
  auto cfg = test_config();
  cfg.idle_timeout = 10s;
  InProcessServer srv(cfg);
  std::atomic<int> slow{0}, wrong{0};
  for (int round = 0; round < 10; ++round) {
    std::vector<std::thread> clients;
    for (int i = 0; i < 10; ++i) {
      clients.emplace_back([&] {
        Client c = Client::connect(srv.port());
        const auto start = Clock::now();
        if (!c.send("a\n") || c.line() != "Hello from the server!\n") ++wrong;
        if (!c.send("b\n")) ++wrong;
        c.shutdown_write();
        if (c.line(5s) != "Hello from the server!\n" || !c.closed_within(5s)) ++wrong;
        if (since(start) > 2s) ++slow;
      });
    }
    for (auto& t : clients) t.join();
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(slow.load(), 0);
  EXPECT_TRUE(eventually([&] { return srv.server().stats().of(Outcome::served) == 100; }));
  EXPECT_EQ(srv.server().stats().of(Outcome::idle_timeout), 0U);
}

// One client pipelining requests faster than they are answered (small replies, so that its
// worker's writes never block) keeps no worker from the others, and still gets every reply.
TEST(Pinning, OneStreamingClientDoesNotStallTheOthers) {
  auto cfg = test_config();
  cfg.workers = 8;
  InProcessServer srv(cfg);
  const Probe before = probe(srv.port(), 300ms);
  ASSERT_GT(before.answered, 0);

  Client streamer = Client::connect(srv.port());
  std::atomic<bool> stop{false};
  std::atomic<long> sent{0};
  std::thread writer([&] {
    std::string burst;
    for (int i = 0; i < 64; ++i) burst += std::string(999, 'x') + "\n";
    while (!stop.load() && streamer.send(burst, 5s)) sent += 64;
    streamer.shutdown_write();
  });
  std::atomic<long> received{0};
  std::atomic<bool> wrong{false};
  std::thread reader([&] {
    for (;;) {
      auto line = streamer.line(10s);
      if (!line) break;
      if (*line != "Hello from the server!\n") wrong = true;
      ++received;
    }
  });
  std::this_thread::sleep_for(200ms);  // the stream is under way
  const Probe during = probe(srv.port(), 2000ms);
  stop = true;
  writer.join();
  reader.join();

  EXPECT_EQ(during.failed, 0);
  EXPECT_GT(during.answered, 20);
  // The limit is generous (sanitizer builds, two cores); a stalled pool took seconds.
  EXPECT_LT(during.worst, std::max(20 * before.worst, std::chrono::microseconds(250000)))
      << "before: " << before.worst.count() << " us";
  EXPECT_GT(sent.load(), 1000);
  EXPECT_FALSE(wrong.load());
  EXPECT_EQ(received.load(), sent.load());
}

// As many clients as workers pipeline requests and never read the replies: their sessions wait
// for room to write without a worker, and a good client is answered promptly.
TEST(Pinning, ClientsThatNeverReadTheirRepliesHoldNoWorker) {
  auto cfg = test_config();
  cfg.workers = 4;
  cfg.mode = tcpd::Mode::echo;
  cfg.io_timeout = 4000ms;
  InProcessServer srv(cfg);
  std::vector<Client> hogs;
  const std::string req(60000, 'x');
  for (int i = 0; i < 4; ++i) {
    hogs.push_back(Client::connect(srv.port()));
    int small = 4096;
    ::setsockopt(hogs.back().fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  // Each hog sends until the server stops taking its requests: its replies fill the socket.
  for (auto& h : hogs) {
    bool stalled = false;
    for (int i = 0; i < 2000 && !stalled; ++i) stalled = !h.send(req + "\n", 200ms);
    ASSERT_TRUE(stalled);
  }
  const Probe p = probe(srv.port(), 1000ms);
  EXPECT_EQ(p.failed, 0);
  EXPECT_LT(p.worst, std::chrono::microseconds(500000));  // not the hogs' 4 s write timeout
  EXPECT_EQ(srv.server().gauges().workers_busy, 0U);
  // Each hog is cut off at its write deadline, and counted so.
  EXPECT_TRUE(eventually([&] { return srv.server().stats().of(Outcome::io_timeout) == 4; }, 10s));
}

// As many clients as workers trickle bytes without a newline, each faster than the one-shot
// pause: they hold no worker between their bytes.
TEST(Pinning, TricklersWithoutANewlineHoldNoWorker) {
  auto cfg = test_config();
  cfg.workers = 4;
  cfg.io_timeout = 3000ms;
  InProcessServer srv(cfg);
  std::atomic<bool> stop{false};
  std::vector<std::thread> tricklers;
  for (int i = 0; i < 4; ++i) {
    tricklers.emplace_back([&] {
      Client c = Client::connect(srv.port());
      while (!stop.load() && c.send("x", 1s)) std::this_thread::sleep_for(4ms);
    });
  }
  std::this_thread::sleep_for(100ms);
  const Probe p = probe(srv.port(), 1500ms);
  stop = true;
  for (auto& t : tricklers) t.join();
  EXPECT_EQ(p.failed, 0);
  EXPECT_LT(p.worst, std::chrono::microseconds(500000));
}

// A one-shot client (no newline) is still answered after the pause, by a parked session's
// timer rather than a worker waiting for it; and with the rule off it is not.
TEST(OneShot, PauseIsWaitedWithoutAWorkerAndCanBeTurnedOff) {
  auto cfg = test_config();
  cfg.workers = 1;
  InProcessServer srv(cfg);
  std::vector<Client> quiet;
  for (int i = 0; i < 3; ++i) {
    quiet.push_back(Client::connect(srv.port()));
    ASSERT_TRUE(quiet.back().send("Hello from the client!"));
  }
  for (auto& c : quiet) {
    EXPECT_TRUE(c.closed_within(3s));
    EXPECT_EQ(c.rest(), "Hello from the server!");
  }
  EXPECT_TRUE(eventually([&] { return srv.server().stats().one_shot_replies == 3; }));

  auto off = test_config();
  off.oneshot_wait = std::chrono::milliseconds(0);
  off.io_timeout = 500ms;
  InProcessServer strict(off);
  Client c = Client::connect(strict.port());
  ASSERT_TRUE(c.send("hel"));
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(c.send("lo\nsecond\n"));
  EXPECT_EQ(c.line(), "Hello from the server!\n");
  EXPECT_EQ(c.line(), "Hello from the server!\n");
  EXPECT_EQ(strict.server().stats().one_shot_replies, 0U);
}

// With every kind of session open (answered and idle, half-closed, a partial request, replies
// not read, new and silent, a one-shot pause), a drain ends by its deadline plus the stated
// grace, and every accepted connection has exactly one outcome.
TEST(DrainDeadline, EveryKindOfSessionEndsByTheDeadlineAndIsCounted) {
  Tcpd srv({"--mode", "echo", "--idle-timeout-ms", "60000", "--io-timeout-ms", "60000",
            "--drain-timeout-ms", "500", "--workers", "2"});
  Client idle = Client::connect(srv.port);
  ASSERT_TRUE(idle.send("a\n"));
  ASSERT_TRUE(idle.line());
  Client half = Client::connect(srv.port);
  ASSERT_TRUE(half.send("a\n"));
  ASSERT_TRUE(half.line());
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(half.send("b"));
  half.shutdown_write();
  Client partial = Client::connect(srv.port);
  ASSERT_TRUE(partial.send("a\nhalf a request"));
  ASSERT_TRUE(partial.line());
  Client hog = Client::connect(srv.port);
  int small = 4096;
  ::setsockopt(hog.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const std::string req(60000, 'x');
  for (int i = 0; i < 2000 && hog.send(req + "\n", 200ms); ++i) {
  }
  Client silent = Client::connect(srv.port);
  Client one_shot = Client::connect(srv.port);
  ASSERT_TRUE(one_shot.send("no newline"));
  std::this_thread::sleep_for(100ms);

  const auto start = Clock::now();
  srv.proc->signal(SIGTERM);
  auto r = srv.proc->wait(20s);
  const auto took = since(start);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(took, 500ms + 1000ms + 500ms) << r.err;  // deadline + grace + a margin
  const std::string summary = r.err.substr(r.err.rfind("summary"));
  EXPECT_EQ(value_after(summary, "open"), 0) << summary;
  EXPECT_EQ(value_after(summary, "accepted"), 6) << summary;
  EXPECT_EQ(value_after(summary, "one_shot_replies"), 1) << summary;
}
