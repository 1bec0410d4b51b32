#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "stats.hpp"
#include "udp_stats.hpp"

namespace tcpd {

// What a scrape shows besides the counters: the server's gauges at that moment.
struct Gauges {
  uint64_t parked = 0;           // sessions holding no worker (parked, and new ones not yet queued)
  uint64_t queue_depth = 0;      // new connections waiting for a worker: <= queue_capacity
  uint64_t queue_handed_on = 0;  // sessions one worker handed to the next free one (no bound)
  uint64_t queue_capacity = 0;
  uint64_t workers = 0;
  uint64_t workers_busy = 0;  // serving sessions now
  uint64_t log_dropped = 0;
  uint64_t clients_tracked = 0;  // clients with connections counted by --max-conns-per-client
};

// The Prometheus text exposition format (version 0.0.4) of everything tcpd counts, plus the
// standard process_* metrics read from /proc.
// With --udp, the datagrams' counters too.
std::string render_metrics(const StatsSnapshot& stats, const Gauges& gauges,
                           const std::optional<UdpSnapshot>& udp = std::nullopt);

}  // namespace tcpd
