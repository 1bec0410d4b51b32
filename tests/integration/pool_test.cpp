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
