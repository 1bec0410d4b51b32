#include "report.hpp"

#include <fmt/format.h>

#include <cmath>

#include "socket.hpp"

namespace tcpd {
namespace {

std::string_view mode_name(const ClientConfig& cfg) {
  return cfg.keepalive ? "keepalive" : "oneshot";
}

double rps(const LoadResult& r) {
  return r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
}

}  // namespace

std::string load_summary_text(const ClientConfig& cfg, const LoadResult& r) {
  std::string out = fmt::format(
      "{} load, concurrency {}{}{}: {} requests in {:.2f} s, {} ok, {} failed, {:.0f} req/s\n",
      mode_name(cfg), cfg.concurrency,
      cfg.pipeline > 1 ? fmt::format(", pipeline {}", cfg.pipeline) : std::string{},
      cfg.rate > 0 ? fmt::format(", rate {:.0f}/s", cfg.rate) : std::string{}, r.requests,
      r.seconds, r.ok, r.failed(), rps(r));
  if (r.failed() > 0) {
    out += "failures:";
    for (int k = 1; k < kFailureKinds; ++k) {
      if (r.failures[k] > 0)
        out += fmt::format(" {} {}", failure_name(static_cast<Failure>(k)), r.failures[k]);
    }
    out += "\n";
  }
  if (r.reconnects > 0) {
    out += fmt::format("reconnects: {} (keep-alive connections the server had closed)\n",
                       r.reconnects);
  }
  if (r.interrupted) out += "interrupted: the figures cover the run until the signal\n";
  if (r.runs > 1) out += fmt::format("merged: {} runs\n", r.runs);
  const double s = r.seconds > 0 ? r.seconds : 1;
  out += fmt::format("bytes: {} sent ({:.0f}/s), {} received ({:.0f}/s)\n", r.bytes_sent,
                     static_cast<double>(r.bytes_sent) / s, r.bytes_received,
                     static_cast<double>(r.bytes_received) / s);
  if (r.targets.size() > 1) {
    for (const TargetCounts& t : r.targets) {
      out += fmt::format("target {}: {} requests, {} ok, {} failed\n", t.name, t.requests, t.ok,
                         t.requests - t.ok);
    }
  }
  const Histogram& h = r.latency;
  if (r.ok == 0) {
    out += "latency: none (no request succeeded)\n";
    return out;
  }
  out += "latency (us):";
  for (double p : cfg.percentiles) out += fmt::format(" p{:g} {} ", p, h.percentile(p / 100));
  out += fmt::format(" max {}\n", h.max());
  if (r.latency_uncorrected) {
    const Histogram& u = *r.latency_uncorrected;
    out += fmt::format("from the actual send (uncorrected): p50 {}  p99 {}  max {}\n",
                       u.percentile(0.50), u.percentile(0.99), u.max());
  }
  if (r.send_lateness && r.send_lateness->count() > 0) {
    const Histogram& l = *r.send_lateness;
    out += fmt::format("send lateness against the schedule (us): p50 {}  p99 {}  max {}\n",
                       l.percentile(0.50), l.percentile(0.99), l.max());
  }
  return out;
}

std::string endpoint(const ClientConfig& cfg) {
  return host_port(cfg.host, cfg.port);
}

std::string histogram_text(const Histogram& h) {
  std::string out = fmt::format("{:>12} {:>14} {:>10} {:>14}\n\n", "Value", "Percentile",
                                "TotalCount", "1/(1-Percentile)");
  uint64_t seen = 0;
  const double total = static_cast<double>(h.count());
  h.for_each([&](uint64_t value, uint64_t count) {
    seen += count;
    const double p = static_cast<double>(seen) / total;
    if (seen == h.count()) {
      out += fmt::format("{:12.3f} {:14.12f} {:10} {:>14}\n", static_cast<double>(value), p, seen,
                         "inf");
    } else {
      out += fmt::format("{:12.3f} {:14.12f} {:10} {:14.2f}\n", static_cast<double>(value), p, seen,
                         1 / (1 - p));
    }
  });
  out += fmt::format("#[Mean    = {:12.3f}, StdDeviation   = {:12.3f}]\n", h.mean(), h.stddev());
  out += fmt::format("#[Max     = {:12.3f}, Total count    = {:12}]\n",
                     static_cast<double>(h.max()), h.count());
  out += "#[Values are microseconds]\n";
  return out;
}

std::string rate_warning(const ClientConfig& cfg, const LoadResult& r) {
  if (cfg.rate <= 0 || r.interrupted || rps(r) >= 0.95 * cfg.rate) return {};
  std::string why;
  const double mean_s = (r.latency_uncorrected ? *r.latency_uncorrected : r.latency).mean() / 1e6;
  const auto needed = static_cast<uint64_t>(std::ceil(cfg.rate * mean_s));
  if (r.failed() * 20 > r.requests) {
    why = fmt::format("{} of {} requests failed", r.failed(), r.requests);
  } else if (needed * 5 >= uint64_t{cfg.concurrency} * 4) {
    why = fmt::format(
        "too few connections for the server's latency: {:g}/s at {:.1f} ms each needs about {} "
        "in flight, and --concurrency is {}",
        cfg.rate, mean_s * 1e3, needed, cfg.concurrency);
  } else if (r.threads > 0 && r.client_cpu_s > 0.85 * r.seconds * r.threads) {
    why = fmt::format(
        "the client is saturated: {:.1f} s of CPU in {:.1f} s on {} threads (try "
        "--threads, or another machine for tcpc)",
        r.client_cpu_s, r.seconds, r.threads);
  } else {
    const Histogram& u = r.latency_uncorrected ? *r.latency_uncorrected : r.latency;
    why = fmt::format(
        "the server did not keep up (p99 from the actual send {:.1f} ms), or the machine is "
        "overloaded",
        static_cast<double>(u.percentile(0.99)) / 1e3);
  }
  const std::string unsent =
      r.unsent > 0 ? fmt::format("; {} scheduled requests were not sent by the end", r.unsent)
                   : std::string();
  return fmt::format("tcpc: achieved {:.1f} req/s, {:.0f}% of the --rate {:g} target: {}{}\n",
                     rps(r), 100 * rps(r) / cfg.rate, cfg.rate, why, unsent);
}

std::string concurrency_warning(const ClientConfig& cfg, const LoadResult& r) {
  if (cfg.rate <= 0 || r.ok == 0 || r.interrupted || !r.send_lateness) return {};
  const Histogram& late = *r.send_lateness;
  const Histogram& u = r.latency_uncorrected ? *r.latency_uncorrected : r.latency;
  const uint64_t late_p99 = late.percentile(0.99);
  // Sends later than a millisecond and than the requests themselves take waited for a free
  // connection; unless tcpc's own CPU was spent (rate_warning says that).
  if (late.count() == 0 || late_p99 < 1000 || late_p99 < u.percentile(0.99)) return {};
  // A few late sends are the run's start (connections still opening), not a shortage.
  uint64_t over_1ms = 0;
  late.for_each([&](uint64_t value, uint64_t count) { over_1ms += value >= 1000 ? count : 0; });
  if (over_1ms < 10) return {};
  if (r.threads > 0 && r.client_cpu_s > 0.85 * r.seconds * r.threads) return {};
  const double capacity = static_cast<double>(cfg.concurrency) * cfg.pipeline;
  const double busy = cfg.rate * u.mean() / 1e6;  // requests in flight on average (Little)
  const auto suggest =
      static_cast<uint64_t>(std::min(1e6, std::ceil(std::max(2 * capacity, 4 * busy))));
  return fmt::format(
      "tcpc: sends left late against the --rate {:g} schedule (p99 {:.1f} ms), and the corrected "
      "latency counts that wait (p99 {:.1f} ms, against {:.1f} ms from the actual send): every "
      "connection was busy, or the CPU was. Try --concurrency {} or more (it is {}), or give "
      "tcpc a machine of its own\n",
      cfg.rate, static_cast<double>(late_p99) / 1e3,
      static_cast<double>(r.latency.percentile(0.99)) / 1e3,
      static_cast<double>(u.percentile(0.99)) / 1e3, suggest, cfg.concurrency);
}

std::string load_hints(const LoadResult& r) {
  std::string out;
  if (r.out_of_ports > 0) {
    out += fmt::format(
        "tcpc: {} connects failed with EADDRNOTAVAIL: out of ephemeral ports (TIME_WAIT). Use "
        "--keepalive, lower --concurrency, or widen net.ipv4.ip_local_port_range (sysctl)\n",
        r.out_of_ports);
  }
  if (r.out_of_fds > 0) {
    out += fmt::format(
        "tcpc: {} sockets could not be created: out of file descriptors. Raise the limit "
        "(ulimit -n) or lower --concurrency\n",
        r.out_of_fds);
  }
  return out;
}

}  // namespace tcpd
