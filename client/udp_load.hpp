#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

#include "client_config.hpp"
#include "histogram.hpp"
#include "load.hpp"

namespace tcpd {

// What a UDP load run measured. Against an echo server each reply carries its datagram's stamp
// (UdpStamp): latency per datagram, duplicates and reordering. Against a greeting server replies
// are only counted per socket: loss by count, latency in closed loop only.
struct UdpLoadResult {
  uint64_t sent = 0;
  uint64_t received = 0;     // distinct datagrams answered (echo), or replies counted (greet)
  uint64_t duplicated = 0;   // a datagram answered more than once
  uint64_t reordered = 0;    // answered after one sent later on the same socket
  uint64_t send_errors = 0;  // send() failed (ENOBUFS, a full socket buffer): not sent
  uint64_t refused = 0;      // ICMP port unreachable: nothing listens there
  uint64_t stamped = 0;      // replies that carried tcpc's stamp (the server echoes)
  // Replies tcpc's own sockets dropped for want of buffer room (SO_RXQ_OVFL): counted as lost,
  // but lost by the generator, not the server.
  uint64_t client_drops = 0;
  uint64_t unsent = 0;   // open loop: scheduled but not sent before the run's end
  double jitter_us = 0;  // RFC 3550's interarrival jitter of the round trip, averaged over sockets
  double seconds = 0;
  unsigned threads = 0;
  double client_cpu_s = 0;
  long client_max_rss_kib = 0;
  bool interrupted = false;
  unsigned runs = 1;  // results merged into this one (tcpc merge)
  std::string error;  // why the run could not start; empty when it ran
  std::chrono::system_clock::time_point started_at{};
  Histogram latency;                             // µs; with --rate from the scheduled send time
  std::optional<Histogram> latency_uncorrected;  // with --rate: from the actual send

  [[nodiscard]] uint64_t lost() const { return sent > received ? sent - received : 0; }
  [[nodiscard]] double loss_percent() const {
    return sent == 0 ? 0 : 100.0 * static_cast<double>(lost()) / static_cast<double>(sent);
  }
};

// Adds `part` (one event loop's result, or another generator's) to `total`: counts and
// histograms; the jitter weighted by `jitter_weight` (the caller divides by the weights' sum).
void accumulate(UdpLoadResult& total, const UdpLoadResult& part, double jitter_weight);

// --udp load mode: --concurrency connected UDP sockets over load_threads() event loops, each
// with one datagram outstanding (closed loop: the next goes on its reply or after --timeout-ms)
// or paced by --rate (open loop). Replies are awaited up to --timeout-ms after the last send.
UdpLoadResult run_udp_load(const ClientConfig& cfg, const Target& target,
                           const std::function<void(const Progress&)>& on_tick,
                           const std::atomic<bool>* stop);

}  // namespace tcpd
