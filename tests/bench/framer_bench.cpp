// The request framer: lines per second for typical and long requests.
#include <benchmark/benchmark.h>

#include <string>

#include "line_framer.hpp"

namespace {

void BM_FramerLines(benchmark::State& state) {
  const std::size_t len = static_cast<std::size_t>(state.range(0));
  std::string batch;
  for (int i = 0; i < 64; ++i) batch += std::string(len, 'x') + "\r\n";
  tcpd::LineFramer f(65536);
  for (auto _ : state) {
    f.append(batch);
    for (auto n = f.next(); n.status == tcpd::LineFramer::Status::line; n = f.next()) {
      benchmark::DoNotOptimize(n.line.data());
    }
  }
  state.SetItemsProcessed(state.iterations() * 64);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(batch.size()));
}
BENCHMARK(BM_FramerLines)->Arg(22)->Arg(1024)->Arg(16384);

// One byte at a time: the worst case for rescanning.
void BM_FramerTrickle(benchmark::State& state) {
  const std::string line = std::string(1000, 'y') + "\n";
  tcpd::LineFramer f(65536);
  for (auto _ : state) {
    for (char c : line) {
      f.append(std::string_view(&c, 1));
      benchmark::DoNotOptimize(f.next());
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(line.size()));
}
BENCHMARK(BM_FramerTrickle);

}  // namespace
