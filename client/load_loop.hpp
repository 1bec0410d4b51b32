#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "client_config.hpp"
#include "fd.hpp"
#include "histogram.hpp"
#include "load.hpp"
#include "msg_template.hpp"
#include "schedule.hpp"

namespace tcpd {

// One event loop's figures for the --interval under way; the watching thread takes and resets
// them at each boundary (the lock is the loop's own, uncontended but for that moment).
struct Window {
  std::mutex mu;
  Histogram latency;
  uint64_t ok = 0;
  uint64_t failed = 0;
};

// What the event loops of one run share: the plan (read-only once they start) and a few
// counters.
struct RunState {
  RunState(const ClientConfig& c, const std::vector<Target>& t) : cfg(c), targets(t) {}

  const ClientConfig& cfg;
  const std::vector<Target>& targets;  // connection i goes to targets[i % size]
  Schedule schedule;
  unsigned threads = 1;
  std::vector<MessageTemplate> requests;  // each ends in a newline, cycled
  // Local addresses to bind, cycled over the connections (empty: the kernel picks): --source,
  // or see loopback_sources().
  std::vector<Target> sources;
  Clock::time_point measured_from{};        // start + --warmup
  std::atomic<uint64_t> closed_tickets{0};  // closed loop with --count: requests taken so far
  std::atomic<uint64_t> open_tickets{0};    // --rate: requests sent so far
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> ok{0};
  // The connections that found the targets: firsts[t] is connection t's (to targets[t]).
  std::vector<Fd> firsts;
  const std::atomic<bool>* stop = nullptr;

  [[nodiscard]] bool stopped() const {
    return stop != nullptr && stop->load(std::memory_order_relaxed);
  }
};

// Drives loop `index`'s share of the run's connections (connections index, index + threads, ...)
// with non-blocking sockets and one epoll set until its requests are done or the run is
// stopped. Results go to `r` and, with --interval, to `window`.
void run_loop(RunState& run, unsigned index, LoadResult& r, Window* window);

}  // namespace tcpd
