#pragma once

#include <fstream>
#include <optional>
#include <string>

#include "client_config.hpp"
#include "load.hpp"

namespace tcpd {

// What a TCP load run writes while it runs: a progress line a second on a terminal, a line per
// --interval, and each interval's histogram to the --hlog file.
class RunReporter {
 public:
  explicit RunReporter(const ClientConfig& cfg);
  // Opens --hlog and writes its header; the error when it cannot.
  std::optional<std::string> open_hlog();
  void tick(const Progress& p);
  [[nodiscard]] bool hlog_failed() const { return hlog_.is_open() && !hlog_; }

 private:
  const ClientConfig& cfg_;
  bool show_progress_;
  std::ofstream hlog_;
  double hlog_end_ = 0;  // where the last interval written ended
};

}  // namespace tcpd
