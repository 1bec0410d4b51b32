#pragma once

#include <optional>
#include <string>
#include <vector>

#include "client_config.hpp"
#include "load.hpp"

namespace tcpd {

// One pass/fail criterion of a run (--max-p99-ms and the like), as CI wants it: the limit, what
// the run measured, and whether it held.
struct Threshold {
  std::string name;  // the flag without its dashes: "max_p99_ms"
  double limit = 0;
  std::optional<double> actual;  // none when nothing was measured (no request succeeded)
  bool held = false;
};

// The thresholds the flags ask for, judged against the run. A latency threshold with no
// successful request to measure fails.
std::vector<Threshold> check_thresholds(const ClientConfig& cfg, const LoadResult& r);

// One stderr line per violated threshold: "tcpc: threshold --max-p99-ms 5 violated: p99 was
// 7.3 ms". Empty when all held.
std::string threshold_violations(const std::vector<Threshold>& ts);

// The exit status of a load run: 3 when a threshold was violated, else 1 when requests failed
// (unless --max-failed allowed them), else 0.
int load_exit_status(const ClientConfig& cfg, const LoadResult& r,
                     const std::vector<Threshold>& ts);

}  // namespace tcpd
