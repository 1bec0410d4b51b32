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

namespace {

std::chrono::system_clock::time_point window_start(const LoadResult& r) {
  return r.window_start;
}
std::chrono::system_clock::time_point window_start(const UdpLoadResult& r) {
  return r.started_at;
}
void set_window_start(LoadResult& r, std::chrono::system_clock::time_point t) {
  r.window_start = r.started_at = t;
}
void set_window_start(UdpLoadResult& r, std::chrono::system_clock::time_point t) {
  r.started_at = t;
}

// `udp` added to `total`, another generator's datagrams.
void add_udp_run(UdpLoadResult& total, const UdpLoadResult& r) {
  accumulate(total, r, static_cast<double>(r.received));
  total.threads += r.threads;
  total.runs += r.runs;
  total.client_cpu_s += r.client_cpu_s;
  total.client_max_rss_kib = std::max(total.client_max_rss_kib, r.client_max_rss_kib);
  total.interrupted = total.interrupted || r.interrupted;
}

// What both protocols' merges share: read each run (naming it in errors), take the first's
// settings, sum connections and rates, and measure the union of the windows.
template <typename Result, typename Read, typename Add>
Result merge_with(const std::vector<RunText>& runs, ClientConfig& cfg, Read read, Add add) {
  if (runs.empty()) throw std::runtime_error("nothing to merge");
  Result total;
  total.runs = 0;
  std::vector<std::pair<double, double>> windows;
  unsigned concurrency = 0;
  double rate = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    ClientConfig one;
    Result r;
    try {
      r = read(runs[i].json, one);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}: {}", runs[i].origin, e.what()));
    }
    if (i == 0) {
      cfg.keepalive = one.keepalive;
      cfg.pipeline = one.pipeline;
      cfg.percentiles = one.percentiles;
      cfg.udp = one.udp;
      cfg.host = one.host;
      cfg.port = one.port;
      cfg.size = one.size;
      set_window_start(total, window_start(r));
    }
    if (!r.error.empty() && total.error.empty()) {
      total.error = fmt::format("{}: {}", runs[i].origin, r.error);
    }
    concurrency += one.concurrency;
    rate += one.rate;
    set_window_start(total, std::min(window_start(total), window_start(r)));
    const double start = unix_seconds(window_start(r));
    if (r.seconds > 0) windows.emplace_back(start, start + r.seconds);
    add(total, std::move(r));
  }
  total.seconds = union_seconds(std::move(windows));
  cfg.concurrency = concurrency;
  cfg.rate = rate;
  return total;
}

}  // namespace

LoadResult merge_runs(const std::vector<RunText>& runs, ClientConfig& cfg) {
  return merge_with<LoadResult>(
      runs, cfg,
      [](std::string_view json, ClientConfig& one) { return load_result_from_json(json, one); },
      [](LoadResult& total, LoadResult r) { add_run(total, std::move(r)); });
}

UdpLoadResult merge_udp_runs(const std::vector<RunText>& runs, ClientConfig& cfg) {
  UdpLoadResult total = merge_with<UdpLoadResult>(
      runs, cfg,
      [](std::string_view json, ClientConfig& one) { return udp_result_from_json(json, one); },
      [](UdpLoadResult& t, const UdpLoadResult& r) { add_udp_run(t, r); });
  // accumulate() summed the jitter weighted by replies.
  if (total.received > 0) total.jitter_us /= static_cast<double>(total.received);
  return total;
}

}  // namespace tcpd
