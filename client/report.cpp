#include "report.hpp"

#include <fmt/format.h>

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
      "{} load, concurrency {}{}: {} requests in {:.2f} s, {} ok, {} failed, {:.0f} req/s\n",
      mode_name(cfg), cfg.concurrency,
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
  const Histogram& h = r.latency;
  if (r.ok == 0) {
    out += "latency: none (no request succeeded)\n";
    return out;
  }
  out += fmt::format("latency (us): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}\n", h.percentile(0.50),
                     h.percentile(0.90), h.percentile(0.99), h.percentile(0.999), h.max());
  return out;
}

std::string load_summary_json(const ClientConfig& cfg, const LoadResult& r) {
  const Histogram& h = r.latency;
  std::string out =
      fmt::format(R"({{"mode":"{}","concurrency":{},"rate":{},"requests":{},"ok":{},"failed":{})",
                  mode_name(cfg), cfg.concurrency, cfg.rate, r.requests, r.ok, r.failed());
  for (int k = 1; k < kFailureKinds; ++k) {
    out += fmt::format(R"(,"{}":{})", failure_name(static_cast<Failure>(k)), r.failures[k]);
  }
  out += fmt::format(R"(,"reconnects":{},"interrupted":{})", r.reconnects, r.interrupted);
  out += fmt::format(R"(,"seconds":{:.3f},"rps":{:.1f})", r.seconds, rps(r));
  // Percentiles of nothing are not 0: null when no request succeeded.
  auto us = [&](uint64_t v) { return r.ok == 0 ? std::string("null") : std::to_string(v); };
  out += fmt::format(R"(,"p50_us":{},"p90_us":{},"p99_us":{},"p999_us":{},"max_us":{}}})",
                     us(h.percentile(0.50)), us(h.percentile(0.90)), us(h.percentile(0.99)),
                     us(h.percentile(0.999)), us(h.max()));
  out += "\n";
  return out;
}

std::string load_error_json(const ClientConfig& cfg, const std::string& target,
                            const std::string& error) {
  std::string escaped;
  for (char c : error) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return fmt::format(R"({{"mode":"{}","target":"{}","requests":0,"ok":0,"failed":0,"error":"{}"}})",
                     mode_name(cfg), target, escaped) +
         "\n";
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
