// The hand-off queue: uncontended push+pop, and producer -> consumer hand-off across threads.
#include <benchmark/benchmark.h>

#include <thread>

#include "work_queue.hpp"

namespace {

void BM_QueuePushPopSameThread(benchmark::State& state) {
  tcpd::WorkQueue<int> q(1024);
  int v = 1;
  for (auto _ : state) {
    q.try_push(v);
    benchmark::DoNotOptimize(q.pop());
  }
}
BENCHMARK(BM_QueuePushPopSameThread);

// One producer (the acceptor's role), state.range(0) consumers (workers) blocking in pop().
void BM_QueueHandOff(benchmark::State& state) {
  const int consumers = static_cast<int>(state.range(0));
  tcpd::WorkQueue<int> q(1 << 16);
  std::vector<std::thread> threads;
  for (int i = 0; i < consumers; ++i) {
    threads.emplace_back([&q] {
      while (auto item = q.pop()) benchmark::DoNotOptimize(*item);
    });
  }
  int v = 0;
  for (auto _ : state) {
    while (!q.try_push(v)) std::this_thread::yield();
  }
  q.close();
  for (auto& t : threads) t.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueueHandOff)->Arg(1)->Arg(8)->UseRealTime();

}  // namespace
