#include "udp_report.hpp"

#include <fmt/format.h>

#include <cstdio>

#include "json.hpp"
#include "report.hpp"
#include "udp_single.hpp"
#include "version.hpp"

namespace tcpd {
namespace {

double rate_of(const UdpLoadResult& r) {
  return r.seconds > 0 ? static_cast<double>(r.received) / r.seconds : 0;
}

double send_rate(const UdpLoadResult& r) {
  return r.seconds > 0 ? static_cast<double>(r.sent) / r.seconds : 0;
}

std::string loop_name(const ClientConfig& cfg) {
  return cfg.rate > 0 ? fmt::format("open loop, rate {:g}/s", cfg.rate) : "closed loop";
}

// Whether the replies carried tcpc's stamps: an echo server. Duplicates, reordering and jitter
// exist only then.
bool stamped(const UdpLoadResult& r) {
  return r.stamped > 0;
}

}  // namespace

std::string udp_summary_text(const ClientConfig& cfg, const UdpLoadResult& r) {
  std::string out = fmt::format(
      "udp {}, {} sockets: {} sent, {} received, {} lost ({:.2f}%), {} duplicated, {} "
      "reordered, jitter {:.1f} us in {:.2f} s, {:.0f} replies/s\n",
      loop_name(cfg), cfg.concurrency, r.sent, r.received, r.lost(), r.loss_percent(), r.duplicated,
      r.reordered, r.jitter_us, r.seconds, rate_of(r));
  if (!stamped(r) && r.received > 0) {
    out += "replies are not echoes of the datagrams (a greeting): loss is by count";
    out += cfg.rate > 0 ? "; no latency in open loop\n" : "\n";
  }
  if (r.interrupted) out += "interrupted: the figures cover the run until the signal\n";
  if (r.runs > 1) out += fmt::format("merged: {} runs\n", r.runs);
  if (r.latency.count() == 0) {
    out += "latency: none measured\n";
    return out;
  }
  out += "latency (us):";
  for (double p : cfg.percentiles)
    out += fmt::format(" p{:g} {} ", p, r.latency.percentile(p / 100));
  out += fmt::format(" max {}\n", r.latency.max());
  if (r.latency_uncorrected && r.latency_uncorrected->count() > 0) {
    const Histogram& u = *r.latency_uncorrected;
    out += fmt::format("from the actual send (uncorrected): p50 {}  p99 {}  max {}\n",
                       u.percentile(0.50), u.percentile(0.99), u.max());
  }
  return out;
}

std::string udp_warnings(const ClientConfig& cfg, const UdpLoadResult& r) {
  std::string out;
  if (r.client_drops > 0) {
    out += fmt::format(
        "tcpc: its own sockets dropped {} replies for want of buffer room (SO_RXQ_OVFL): that "
        "part of the loss is the generator's, not the server's. Try --rcvbuf {} (raise "
        "net.core.rmem_max to allow it) or more --threads\n",
        r.client_drops, 4 * 1024 * 1024);
  }
  if (r.refused > 0) {
    out += fmt::format(
        "tcpc: {} ICMP port unreachable: nothing listens for UDP at {} (is the server started "
        "with --udp?)\n",
        r.refused, endpoint(cfg));
  }
  if (r.send_errors > 0) {
    out +=
        fmt::format("tcpc: {} datagrams could not be sent (ENOBUFS: the send buffers were full)\n",
                    r.send_errors);
  }
  if (cfg.rate > 0 && !r.interrupted && send_rate(r) < 0.95 * cfg.rate) {
    out += fmt::format(
        "tcpc: sent {:.1f} datagrams/s, {:.0f}% of the --rate {:g} target{}: the client is "
        "saturated (try --threads)\n",
        send_rate(r), 100 * send_rate(r) / cfg.rate, cfg.rate,
        r.unsent > 0 ? fmt::format("; {} were not sent by the end", r.unsent) : std::string());
  }
  return out;
}

}  // namespace tcpd
