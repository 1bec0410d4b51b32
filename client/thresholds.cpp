#include "thresholds.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace tcpd {
namespace {

std::optional<double> percentile_ms(const LoadResult& r, double q) {
  if (r.ok == 0) return std::nullopt;
  return static_cast<double>(r.latency.percentile(q)) / 1000.0;
}

double achieved_rps(const LoadResult& r) {
  return r.seconds > 0 ? static_cast<double>(r.ok) / r.seconds : 0;
}

Threshold at_most(std::string name, double limit, std::optional<double> actual) {
  return {std::move(name), limit, actual, actual.has_value() && *actual <= limit};
}

// "--max-p99-ms 5" from "max_p99_ms".
std::string flag_of(const std::string& name) {
  std::string f = "--" + name;
  std::replace(f.begin(), f.end(), '_', '-');
  return f;
}

std::string what_of(const Threshold& t) {
  if (t.name == "max_p99_ms") return "p99";
  if (t.name == "max_p999_ms") return "p99.9";
  if (t.name == "min_rps") return "the rate";
  return "failed requests";
}

std::string unit_of(const Threshold& t) {
  if (t.name == "min_rps") return " req/s";
  if (t.name == "max_failed") return "";
  return " ms";
}

}  // namespace

std::vector<Threshold> check_thresholds(const ClientConfig& cfg, const LoadResult& r) {
  std::vector<Threshold> out;
  if (cfg.max_p99_ms) out.push_back(at_most("max_p99_ms", *cfg.max_p99_ms, percentile_ms(r, 0.99)));
  if (cfg.max_p999_ms) {
    out.push_back(at_most("max_p999_ms", *cfg.max_p999_ms, percentile_ms(r, 0.999)));
  }
  if (cfg.min_rps) {
    const double rps = achieved_rps(r);
    out.push_back({"min_rps", *cfg.min_rps, rps, rps >= *cfg.min_rps});
  }
  if (cfg.max_failed) {
    out.push_back(at_most("max_failed", static_cast<double>(*cfg.max_failed),
                          static_cast<double>(r.failed())));
  }
  return out;
}

std::string threshold_violations(const std::vector<Threshold>& ts) {
  std::string out;
  for (const Threshold& t : ts) {
    if (t.held) continue;
    const std::string was = t.actual ? fmt::format("{:g}{}", *t.actual, unit_of(t))
                                     : std::string("not measured (no request succeeded)");
    out += fmt::format("tcpc: threshold {} {:g} violated: {} was {}\n", flag_of(t.name), t.limit,
                       what_of(t), was);
  }
  return out;
}

int load_exit_status(const ClientConfig& cfg, const LoadResult& r,
                     const std::vector<Threshold>& ts) {
  if (std::any_of(ts.begin(), ts.end(), [](const Threshold& t) { return !t.held; })) return 3;
  if (r.failed() > 0 && !cfg.max_failed) return 1;
  return 0;
}

}  // namespace tcpd
