#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string_view>
#include <thread>

namespace tcpd {

// Hands one finished line (ending in '\n') to the log writer. Never blocks on the sink: when the
// writer's buffer is full the line is dropped and counted. Before a LogWriter runs (tests,
// start-up) the line is written directly; after it has stopped, lines are dropped.
void log_submit(std::string_view line) noexcept;
// Lines dropped because the sink could not keep up (or had gone) since the process started.
uint64_t log_dropped() noexcept;

// One line to the log, "tcpd: " first. Never throws: a line that cannot be formatted for lack of
// memory is counted as dropped.
template <typename... Args>
void log_line(fmt::format_string<Args...> format, Args&&... args) noexcept {
  try {
    fmt::memory_buffer buf;
    fmt::format_to(std::back_inserter(buf), "tcpd: ");
    fmt::format_to(std::back_inserter(buf), format, std::forward<Args>(args)...);
    buf.push_back('\n');
    log_submit({buf.data(), buf.size()});
  } catch (...) {
    log_submit({});  // counts it
  }
}

// The one thread that writes log lines to `fd` (stderr). Workers and the signal thread only
// append to a bounded buffer, so a sink that blocks (stderr on a pipe nobody reads, a stopped
// terminal) costs dropped lines, never a stalled worker or a missed SIGTERM.
class LogWriter {
 public:
  static constexpr std::size_t kDefaultCapacity = 256 * 1024;

  explicit LogWriter(int fd, std::size_t capacity = kDefaultCapacity);
  // Writes what is buffered for at most half a second, then gives up on a dead sink.
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

 private:
  std::thread thread_;
};

}  // namespace tcpd
