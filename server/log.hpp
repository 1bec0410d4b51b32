#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <thread>

namespace tcpd {

enum class LogLevel { error, warn, info, debug };
enum class LogFormat { text, json };

// Set once in main before any thread starts. `name` (--name) tells instances apart in every line.
void log_configure(LogFormat format, LogLevel level, std::string_view name);
bool log_enabled(LogLevel level) noexcept;
std::string_view level_name(LogLevel level);

// Hands one finished line (ending in '\n') to the log writer. Never blocks on the sink: when the
// writer's buffer is full the line is dropped and counted. Before a LogWriter runs (tests,
// start-up) the line is written directly; after it has stopped, lines are dropped.
void log_submit(std::string_view line) noexcept;
// Lines dropped because the sink could not keep up (or had gone) since the process started.
uint64_t log_dropped() noexcept;

// Writes one log line around `msg` in the configured format: text
// "2026-11-28T14:07:00.123Z info tcpd: msg", or JSON {"ts":…,"level":…,"msg":…}.
void log_message(LogLevel level, std::string_view msg) noexcept;

// One line at `level`, if that level is enabled. Never throws: a line that cannot be formatted
// for lack of memory is counted as dropped.
template <typename... Args>
void log_at(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (!log_enabled(level)) return;
  try {
    fmt::memory_buffer buf;
    fmt::format_to(std::back_inserter(buf), format, std::forward<Args>(args)...);
    log_message(level, {buf.data(), buf.size()});
  } catch (...) {
    log_submit({});  // counts it
  }
}

// Lines an operator asked for (the SIGUSR1 stats, the shutdown summary): written whatever the
// level, labelled info.
template <typename... Args>
void log_always(fmt::format_string<Args...> format, Args&&... args) noexcept {
  try {
    fmt::memory_buffer buf;
    fmt::format_to(std::back_inserter(buf), format, std::forward<Args>(args)...);
    log_message(LogLevel::info, {buf.data(), buf.size()});
  } catch (...) {
    log_submit({});
  }
}

// The counters line an operator asked for (SIGUSR1's "stats", the drain's "summary"), written
// whatever the level: text "summary accepted=3 open=0 ...", or JSON {"msg":"summary",
// "accepted":3,"open":0,...} with one numeric field per `name=value` pair of `pairs`.
void log_counters(std::string_view what, std::string_view pairs) noexcept;

// How one connection ended, for its info line (JSON: one field each).
struct ConnectionLog {
  std::string_view peer;
  std::string_view outcome;
  uint64_t requests = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  double duration_ms = 0;
};
void log_connection(const ConnectionLog& c) noexcept;

// The one thread that writes log lines to `fd` (stderr). Workers and the signal thread only
// append to a bounded buffer, so a sink that blocks (stderr on a pipe nobody reads, a stopped
// terminal) costs dropped lines, never a stalled worker or a missed SIGTERM.
class LogWriter {
 public:
  static constexpr std::size_t kDefaultCapacity = std::size_t{256} * 1024;

  explicit LogWriter(int fd, std::size_t capacity = kDefaultCapacity);
  // Writes what is buffered for at most half a second, then gives up on a dead sink.
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

 private:
  std::thread thread_;
};

}  // namespace tcpd
