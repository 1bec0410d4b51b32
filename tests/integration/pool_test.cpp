// What the fixed pool does: parallelism across workers, and a full queue.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "net.hpp"

using namespace testing_support;

namespace {

// N clients each send one request at the same moment; returns the wall time until the last
// reply, or a very large value if any client failed.
std::chrono::milliseconds parallel_requests(int port, int n) {
  std::vector<Client> clients;
  for (int i = 0; i < n; ++i) clients.push_back(Client::connect(port));
  const auto start = std::chrono::steady_clock::now();
  for (auto& c : clients) EXPECT_TRUE(c.send("work\n"));
  for (auto& c : clients) EXPECT_EQ(c.line(30s), "Hello from the server!\n");
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

}  // namespace

TEST(Pool, EightWorkersServeEightSlowRequestsInParallel) {
  auto cfg = test_config();
  cfg.workers = 8;
  cfg.delay = 400ms;
  InProcessServer srv(cfg);
  const auto took = parallel_requests(srv.port(), 8);
  EXPECT_GE(took, 390ms);
  // About one delay; eight would be 3.2 s. Half of that is a margin for sanitizer builds.
  EXPECT_LT(took, 1600ms);
}

TEST(Pool, OneWorkerServesThemOneAfterAnother) {
  auto cfg = test_config();
  cfg.workers = 1;
  cfg.delay = 200ms;
  InProcessServer srv(cfg);
  const auto took = parallel_requests(srv.port(), 8);
  EXPECT_GE(took, 8 * 200ms - 50ms);
}

// A worker takes the ready sessions one epoll_wait() reported as a batch, reads them all, then
// answers them in turn. A request that makes it sleep (here --delay-ms) must not hold the rest
// of its batch: they go to the queue for the next free worker. Without that, the six requests
// below were answered one after another by one worker (the last after seven delays) while the
// other worker was free from the second delay on.
TEST(Pool, ABatchIsNotHeldByASleepingRequest) {
  auto cfg = test_config();
  cfg.workers = 2;
  cfg.delay = 300ms;
  InProcessServer srv(cfg);
  std::vector<Client> ready;
  for (int i = 0; i < 6; ++i) ready.push_back(Client::connect(srv.port()));
  for (auto& c : ready) ASSERT_TRUE(c.send("first\n"));
  for (auto& c : ready) ASSERT_EQ(c.line(10s), "Hello from the server!\n");  // parked now
  const auto bytes_before = srv.server().stats().bytes_in;
  // One worker busy for one delay, the other for two.
  Client a = Client::connect(srv.port());
  Client b = Client::connect(srv.port());
  ASSERT_TRUE(a.send("a\n"));
  ASSERT_TRUE(b.send("b\nb\n"));
  ASSERT_TRUE(eventually([&] { return srv.server().stats().bytes_in == bytes_before + 6; }));
  // Six sessions ready at once: the worker free first takes them as one batch.
  const auto start = std::chrono::steady_clock::now();
  for (auto& c : ready) ASSERT_TRUE(c.send("second\n"));
  for (auto& c : ready) ASSERT_EQ(c.line(10s), "Hello from the server!\n");
  const auto took = std::chrono::steady_clock::now() - start;
  // Two workers from the second delay on: about five delays (1.5 s); held, seven (2.1 s).
  EXPECT_LT(took, 1800ms) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                          << " ms";
}

TEST(Pool, FullQueueAnswersErrBusyAndCloses) {
  auto cfg = test_config();
  cfg.workers = 1;
  cfg.queue = 1;
  cfg.delay = 1000ms;
  InProcessServer srv(cfg);
  Client first = Client::connect(srv.port());
  ASSERT_TRUE(first.send("a\n"));
  // The worker has taken the first connection once it is no longer waiting for a worker.
  ASSERT_TRUE(eventually([&] { return srv.server().stats().bytes_in == 2; }));  // it has "a\n"
  Client second = Client::connect(srv.port());  // waits in the queue
  ASSERT_TRUE(second.send("b\n"));
  ASSERT_TRUE(eventually([&] { return srv.server().stats().accepted == 2; }));
  Client third = Client::connect(srv.port());  // finds the queue full
  ASSERT_TRUE(third.send("c\n"));
  EXPECT_EQ(third.until_eof(2s), "ERR busy\n");
  EXPECT_EQ(first.line(), "Hello from the server!\n");
  EXPECT_EQ(second.line(), "Hello from the server!\n");
  srv.stop();
  auto st = srv.server().stats();
  EXPECT_EQ(st.of(tcpd::Outcome::busy), 1u);
  EXPECT_EQ(st.ended(), st.accepted);
}
