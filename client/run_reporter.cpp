#include "run_reporter.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "hlog.hpp"

namespace tcpd {

RunReporter::RunReporter(const ClientConfig& cfg)
    : cfg_(cfg), show_progress_(!cfg.quiet && ::isatty(STDERR_FILENO) != 0) {}

std::optional<std::string> RunReporter::open_hlog() {
  if (cfg_.hlog_file.empty()) return std::nullopt;
  hlog_.open(cfg_.hlog_file);
  if (!hlog_) {
    return fmt::format("cannot write --hlog {}: {}", cfg_.hlog_file, std::strerror(errno));
  }
  // The intervals count from the measured window's opening, after --warmup.
  hlog_ << hlog_header(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::chrono::duration<double>(cfg_.warmup_s)));
  return std::nullopt;
}

void RunReporter::tick(const Progress& p) {
  if (p.interval != nullptr && hlog_.is_open()) {
    hlog_ << hlog_line(hlog_end_, p.interval->end_s - hlog_end_, *p.interval_latency);
    hlog_.flush();
    hlog_end_ = p.interval->end_s;
  }
  if (p.interval != nullptr && cfg_.interval_s > 0) {
    const IntervalStats& iv = *p.interval;
    auto us = [&](uint64_t v) { return iv.ok > 0 ? fmt::format("{} us", v) : std::string("-"); };
    std::fputs(fmt::format("tcpc: {:7.2f} s: {:.0f} req/s  p50 {}  p99 {}  {} errors\n", iv.end_s,
                           iv.rps, us(iv.p50_us), us(iv.p99_us), iv.failed)
                   .c_str(),
               stderr);
    return;
  }
  if (p.interval != nullptr || !show_progress_ || p.seconds < 2.0) return;
  std::fputs(fmt::format("tcpc: {:.0f} s: {} requests, {} failed, {:.0f} req/s\n", p.seconds,
                         p.requests, p.requests - p.ok, static_cast<double>(p.ok) / p.seconds)
                 .c_str(),
             stderr);
}

}  // namespace tcpd
