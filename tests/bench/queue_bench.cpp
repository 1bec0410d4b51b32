// The hand-off queue: uncontended push+pop, and producer -> consumer hand-off across threads.
#include <benchmark/benchmark.h>

#include <thread>

#include "queue_worker.hpp"
#include "work_queue.hpp"

namespace {

void BM_QueuePushPopSameThread(benchmark::State& state) {
  tcpd::WorkQueue<int> q(1024);
  int v = 1;
  for (auto _ : state) {
    q.try_push(v);
    benchmark::DoNotOptimize(q.try_pop());
  }
}
BENCHMARK(BM_QueuePushPopSameThread);

// One producer (the acceptor's role), state.range(0) consumers (workers) waiting their turn:
// one leads (here on the queue's wake fd), the others follow.
void BM_QueueHandOff(benchmark::State& state) {
  const int consumers = static_cast<int>(state.range(0));
  tcpd::WorkQueue<int> q(1 << 16);
  std::vector<std::thread> threads;
  for (int i = 0; i < consumers; ++i) {
    threads.emplace_back([&q] {
      while (auto item = tcpd::test::take(q)) benchmark::DoNotOptimize(*item);
    });
  }
  int v = 0;
  for (auto _ : state) {
    while (!q.try_push(v)) std::this_thread::yield();
  }
  while (q.size() > 0) std::this_thread::yield();
  q.finish();
  for (auto& t : threads) t.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueueHandOff)->Arg(1)->Arg(8)->UseRealTime();

}  // namespace
