#include "merge.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "summary_json.hpp"

namespace tcpd {
namespace {

double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// `r`, another generator's result, added to `total`.
void add_run(LoadResult& total, LoadResult r) {
  // A closed-loop run's uncorrected latency is its latency.
  if (!r.latency_uncorrected) r.latency_uncorrected = r.latency;
  accumulate(total, r);
  total.threads += r.threads;
  total.runs += r.runs;
  total.client_cpu_s += r.client_cpu_s;
  total.client_max_rss_kib = std::max(total.client_max_rss_kib, r.client_max_rss_kib);
  total.interrupted = total.interrupted || r.interrupted;
}

}  // namespace

double union_seconds(std::vector<std::pair<double, double>> windows) {
  std::sort(windows.begin(), windows.end());
  double total = 0;
  double cover_start = 0;
  double cover_end = 0;
  bool open = false;
  for (const auto& [start, end] : windows) {
    if (open && start <= cover_end) {
      cover_end = std::max(cover_end, end);
      continue;
    }
    if (open) total += cover_end - cover_start;
    cover_start = start;
    cover_end = end;
    open = true;
  }
  if (open) total += cover_end - cover_start;
  return total;
}

LoadResult merge_runs(const std::vector<RunText>& runs, ClientConfig& cfg) {
  if (runs.empty()) throw std::runtime_error("nothing to merge");
  LoadResult total;
  total.runs = 0;
  std::vector<std::pair<double, double>> windows;
  unsigned concurrency = 0;
  double rate = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    ClientConfig one;
    LoadResult r;
    try {
      r = load_result_from_json(runs[i].json, one);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}: {}", runs[i].origin, e.what()));
    }
    if (i == 0) {
      cfg.keepalive = one.keepalive;
      cfg.pipeline = one.pipeline;
      cfg.percentiles = one.percentiles;
      total.window_start = total.started_at = r.window_start;
    }
    if (!r.error.empty() && total.error.empty()) {
      total.error = fmt::format("{}: {}", runs[i].origin, r.error);
    }
    concurrency += one.concurrency;
    rate += one.rate;
    total.window_start = std::min(total.window_start, r.window_start);
    const double start = unix_seconds(r.window_start);
    if (r.seconds > 0) windows.emplace_back(start, start + r.seconds);
    add_run(total, std::move(r));
  }
  total.started_at = total.window_start;
  total.seconds = union_seconds(std::move(windows));
  cfg.concurrency = concurrency;
  cfg.rate = rate;
  return total;
}

}  // namespace tcpd
