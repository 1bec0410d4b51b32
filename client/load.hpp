#pragma once

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "client_config.hpp"
#include "exchange.hpp"
#include "histogram.hpp"

namespace tcpd {

// One --interval's figures.
struct IntervalStats {
  double end_s = 0;  // since the measured window opened
  uint64_t ok = 0;
  uint64_t failed = 0;
  double rps = 0;
  uint64_t p50_us = 0;
  uint64_t p99_us = 0;
};

// One --target's share of a run.
struct TargetCounts {
  std::string name;  // "host:port" as given
  uint64_t requests = 0;
  uint64_t ok = 0;
};

struct LoadResult {
  uint64_t requests = 0;  // attempted
  uint64_t ok = 0;
  std::array<uint64_t, kFailureKinds> failures{};  // indexed by Failure
  uint64_t out_of_ports = 0;                       // EADDRNOTAVAIL on connect
  uint64_t out_of_fds = 0;                         // EMFILE/ENFILE on socket
  unsigned threads = 0;                            // event loops that ran
  double client_cpu_s = 0;      // tcpc's own CPU time (user + system) over the whole run
  long client_max_rss_kib = 0;  // tcpc's own peak resident memory
  uint64_t reconnects = 0;      // keep-alive connections found closed by the server and reopened
  // With --rate and --duration: requests scheduled that the run could not send before its end
  // (every connection was still waiting for a reply).
  uint64_t unsent = 0;
  bool interrupted = false;  // ended early by SIGINT/SIGTERM
  // The measured window: start to the last request's end, and with --rate at least the
  // scheduled span (requests scheduled / rate), so a run that finishes early does not inflate
  // its rps, and connections held open to the end of --duration do not dilute it.
  double seconds = 0;
  std::chrono::system_clock::time_point started_at{};
  // Wall-clock time the measured window opened (started_at + --warmup): with `seconds`, what
  // `tcpc merge` unions across generators.
  std::chrono::system_clock::time_point window_start{};
  uint64_t bytes_sent = 0;      // request bytes written, in the measured window
  uint64_t bytes_received = 0;  // reply bytes read, in the measured window
  std::vector<TargetCounts> targets;
  unsigned runs = 1;              // results merged into this one (tcpc merge)
  std::string error;              // why the run could not start; empty when it ran
  Clock::time_point last_done{};  // when the last counted request ended
  Histogram latency;  // successful requests only, µs; with --rate from the scheduled send time
  // With --rate: the same requests from the moment each was actually sent (the server's view,
  // without the queueing a late send hides). Without --rate the two are the same.
  std::optional<Histogram> latency_uncorrected;
  // With --rate: how late each send left against its scheduled time, µs. A late generator shows
  // here rather than as server latency.
  std::optional<Histogram> send_lateness;
  std::vector<IntervalStats> intervals;  // with --interval

  [[nodiscard]] uint64_t failed() const { return requests - ok; }
};

// Where to connect: resolved once, before the run.
struct Target {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// What a run may be handed besides its target: the connection that found the target (used as
// the first connection, so the server never sees a connection without a request) and a flag
// that ends the run early (SIGINT/SIGTERM), keeping what was measured.
struct RunControl {
  std::vector<Fd> firsts;  // one per target, in --target order
  const std::atomic<bool>* stop = nullptr;
};

struct Progress {
  uint64_t requests;
  uint64_t ok;
  double seconds;
  const IntervalStats* interval = nullptr;      // with --interval or --hlog, the one just ended
  const Histogram* interval_latency = nullptr;  // and its latency histogram
};

// Local addresses to bind on a 127/8 target, cycled over the connections (empty: one is
// enough, the kernel picks). As many as --concurrency needs for ephemeral ports, and without
// --keepalive at least 64: see load.cpp.
// A --source address (port 0) for targets of `family`; or why it cannot be one.
std::variant<Target, std::string> source_address(const std::string& text, int family);

std::vector<sockaddr_storage> loopback_sources(const Target& target, uint64_t connections,
                                               bool keepalive);

// Adds `part` (one event loop's result, or another generator's) to `total`: counts, bytes,
// histograms, and targets by name. The generator's own figures (threads, CPU, memory) are the
// caller's to combine.
void accumulate(LoadResult& total, const LoadResult& part);

// Event-loop threads for a run: --threads (default: one per CPU), never more than connections.
unsigned load_threads(const ClientConfig& cfg);

// Raises the soft descriptor limit to what --concurrency needs; the error (naming the number and
// the fix) when even the hard limit is too low.
std::optional<std::string> reserve_descriptors(const ClientConfig& cfg);

// Runs load mode: --concurrency connections driven by load_threads() event loops, in a closed
// loop or paced by --rate (latency measured from each request's scheduled time). `on_tick` is
// called about once a second from the calling thread while the run lasts (every --interval
// instead, with that interval's figures).
// Throws std::invalid_argument for a request template or --source the run cannot use.
LoadResult run_load(const ClientConfig& cfg, const std::vector<Target>& targets,
                    const std::function<void(const Progress&)>& on_tick, RunControl control = {});

}  // namespace tcpd
