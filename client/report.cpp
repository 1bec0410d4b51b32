#include "report.hpp"

#include <fmt/format.h>

#include <cmath>
#include <ctime>

#include "json.hpp"
#include "socket.hpp"
#include "thresholds.hpp"
#include "version.hpp"

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
  out += "latency (us):";
  for (double p : cfg.percentiles) out += fmt::format(" p{:g} {} ", p, h.percentile(p / 100));
  out += fmt::format(" max {}\n", h.max());
  if (r.latency_uncorrected) {
    const Histogram& u = *r.latency_uncorrected;
    out += fmt::format("from the actual send (uncorrected): p50 {}  p99 {}  max {}\n",
                       u.percentile(0.50), u.percentile(0.99), u.max());
  }
  return out;
}

namespace {

// "p50_us":…,"p90_us":…: the percentiles of `h`, null when no request succeeded (percentiles of
// nothing are not 0). `suffix` names the uncorrected set.
std::string percentiles_json(const Histogram& h, bool any, std::string_view suffix) {
  auto us = [&](uint64_t v) { return any ? std::to_string(v) : std::string("null"); };
  return fmt::format(
      R"(,"p50_us{0}":{1},"p90_us{0}":{2},"p99_us{0}":{3},"p999_us{0}":{4},"max_us{0}":{5})",
      suffix, us(h.percentile(0.50)), us(h.percentile(0.90)), us(h.percentile(0.99)),
      us(h.percentile(0.999)), us(h.max()));
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const time_t secs = std::chrono::system_clock::to_time_t(t);
  tm utc{};
  ::gmtime_r(&secs, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

}  // namespace

std::string endpoint(const ClientConfig& cfg) {
  return host_port(cfg.host, cfg.port);
}

std::string load_summary_json(const ClientConfig& cfg, const LoadResult& r) {
  const Histogram& h = r.latency;
  std::string out = fmt::format(
      R"({{"version":"{}","target":{},"start":"{}","mode":"{}","threads":{},"connections":{},"concurrency":{},"rate":{},"requests":{},"ok":{},"failed":{})",
      kVersion, json_string(endpoint(cfg)), rfc3339(r.started_at), mode_name(cfg), r.threads,
      cfg.concurrency, cfg.concurrency, cfg.rate, r.requests, r.ok, r.failed());
  for (int k = 1; k < kFailureKinds; ++k) {
    out += fmt::format(R"(,"{}":{})", failure_name(static_cast<Failure>(k)), r.failures[k]);
  }
  out += fmt::format(R"(,"reconnects":{},"interrupted":{})", r.reconnects, r.interrupted);
  out += fmt::format(R"(,"seconds":{:.3f},"rps":{:.1f})", r.seconds, rps(r));
  out += fmt::format(R"(,"client_cpu_s":{:.3f},"client_max_rss_kib":{})", r.client_cpu_s,
                     r.client_max_rss_kib);
  if (cfg.rate > 0) {
    out += fmt::format(R"(,"target_rps":{},"achieved_rps":{:.1f},"unsent":{})", cfg.rate, rps(r),
                       r.unsent);
  }
  const bool any = r.ok > 0;
  out += any ? fmt::format(R"(,"mean_us":{:.1f},"min_us":{})", h.mean(), h.min())
             : std::string(R"(,"mean_us":null,"min_us":null)");
  out += percentiles_json(h, any, "");
  out += R"(,"percentiles_us":{)";
  for (std::size_t i = 0; i < cfg.percentiles.size(); ++i) {
    const double p = cfg.percentiles[i];
    out += fmt::format(R"({}"{:g}":{})", i == 0 ? "" : ",", p,
                       any ? std::to_string(h.percentile(p / 100)) : std::string("null"));
  }
  out += "}";
  out += percentiles_json(r.latency_uncorrected ? *r.latency_uncorrected : h, any, "_uncorrected");
  out += thresholds_json(check_thresholds(cfg, r));
  if (cfg.interval_s > 0) {
    out += R"(,"intervals":[)";
    for (std::size_t i = 0; i < r.intervals.size(); ++i) {
      const IntervalStats& iv = r.intervals[i];
      auto us = [&](uint64_t v) { return iv.ok > 0 ? std::to_string(v) : std::string("null"); };
      out += fmt::format(
          R"({}{{"end_s":{:.3f},"ok":{},"failed":{},"rps":{:.1f},"p50_us":{},"p99_us":{}}})",
          i == 0 ? "" : ",", iv.end_s, iv.ok, iv.failed, iv.rps, us(iv.p50_us), us(iv.p99_us));
    }
    out += "]";
  }
  out += "}\n";
  return out;
}

std::string load_error_json(const ClientConfig& cfg, const std::string& error) {
  return fmt::format(R"({{"mode":"{}","target":{},"requests":0,"ok":0,"failed":0,"error":{}}})",
                     mode_name(cfg), json_string(endpoint(cfg)), json_string(error)) +
         "\n";
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
