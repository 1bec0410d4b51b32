#include "log.hpp"

#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <time.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <system_error>

#include "json.hpp"

namespace tcpd {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kFlushTimeout = std::chrono::milliseconds(500);

enum class SinkMode { direct, buffered, closed };

// Never destroyed: a line logged from any thread at any time, even during exit, finds it.
struct LogState {
  std::mutex mu;
  std::condition_variable cv;      // the writer waits for lines or the stop
  std::condition_variable exited;  // the destructor waits for the writer to finish
  std::string pending;
  std::size_t capacity = 0;
  SinkMode mode = SinkMode::direct;
  bool stopping = false;
  bool done = false;
  Clock::time_point give_up = Clock::time_point::max();
  int fd = STDERR_FILENO;
  std::atomic<uint64_t> dropped{0};
};

LogState& state() {
  static auto* s = new LogState;
  return *s;
}

struct LogConfig {
  std::atomic<LogFormat> format{LogFormat::text};
  std::atomic<LogLevel> level{LogLevel::info};
  std::string name;  // written once in main before any other thread exists
};

LogConfig& config() {
  static auto* c = new LogConfig;
  return *c;
}

// The seconds part of the timestamp, formatted once a second for every thread (a short lock
// around a copy: logging already takes the buffer's).
struct SecondsCache {
  std::mutex mu;
  time_t sec = -1;
  std::array<char, 24> text{};
};

// "2026-11-28T14:07:00.123Z".
void append_timestamp(fmt::memory_buffer& out) {
  static auto* cache = new SecondsCache;  // never destroyed: threads may log during exit
  const auto since = std::chrono::system_clock::now().time_since_epoch();
  const time_t sec =
      static_cast<time_t>(std::chrono::duration_cast<std::chrono::seconds>(since).count());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000;
  std::array<char, 24> text;
  {
    std::lock_guard lock(cache->mu);
    if (sec != cache->sec) {
      tm t{};
      ::gmtime_r(&sec, &t);
      ::strftime(cache->text.data(), cache->text.size(), "%Y-%m-%dT%H:%M:%S", &t);
      cache->sec = sec;
    }
    text = cache->text;
  }
  fmt::format_to(std::back_inserter(out), "{}.{:03}Z", text.data(), ms);
}

void append_json_string(fmt::memory_buffer& out, std::string_view s) {
  const std::string quoted = json_string(s);
  out.append(quoted.data(), quoted.data() + quoted.size());
}

// Everything before the message: the timestamp, the level, and who is speaking.
void begin_line(fmt::memory_buffer& out, LogLevel level) {
  const LogConfig& cfg = config();
  if (cfg.format.load(std::memory_order_relaxed) == LogFormat::json) {
    fmt::format_to(std::back_inserter(out), "{{\"ts\":\"");
    append_timestamp(out);
    fmt::format_to(std::back_inserter(out), "\",\"level\":\"{}\"", level_name(level));
    if (!cfg.name.empty()) {
      fmt::format_to(std::back_inserter(out), ",\"instance\":");
      append_json_string(out, cfg.name);
    }
    return;
  }
  append_timestamp(out);
  fmt::format_to(std::back_inserter(out), " {} ", level_name(level));
  if (cfg.name.empty()) {
    fmt::format_to(std::back_inserter(out), "tcpd: ");
  } else {
    fmt::format_to(std::back_inserter(out), "tcpd[{}]: ", cfg.name);
  }
}

bool json() {
  return config().format.load(std::memory_order_relaxed) == LogFormat::json;
}

// One whole line around `msg`: text, or a JSON object whose "msg" is `msg`.
void format_line(fmt::memory_buffer& out, LogLevel level, std::string_view msg) {
  begin_line(out, level);
  if (json()) {
    fmt::format_to(std::back_inserter(out), ",\"msg\":");
    append_json_string(out, msg);
    out.push_back('}');
  } else {
    out.append(msg.data(), msg.data() + msg.size());
  }
  out.push_back('\n');
}

void write_direct(std::string_view line) {
  while (!line.empty()) {
    ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    line.remove_prefix(static_cast<std::size_t>(n));
  }
}

// One write that cannot block: a socket (journald's stream) takes MSG_DONTWAIT; a pipe with
// room for PIPE_BUF bytes (poll's POLLOUT) takes that many without blocking.
ssize_t write_some(int fd, bool socket, std::string_view data) {
  const std::size_t n = std::min<std::size_t>(data.size(), PIPE_BUF);
  if (socket) return ::send(fd, data.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
  return ::write(fd, data.data(), n);
}

// Writes `data`, waiting for room in slices so that a stop is noticed. Returns false when the
// sink failed or the stop's flush time ran out; what was not written is then lost.
bool write_out(LogState& st, bool socket, std::string_view data) {
  while (!data.empty()) {
    pollfd p{st.fd, POLLOUT, 0};
    int rc = ::poll(&p, 1, 100);
    if (rc < 0 && errno != EINTR) return false;
    if (rc > 0) {
      if ((p.revents & (POLLERR | POLLNVAL)) != 0) return false;
      ssize_t n = write_some(st.fd, socket, data);
      if (n > 0) data.remove_prefix(static_cast<std::size_t>(n));
      if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
      continue;
    }
    std::lock_guard lock(st.mu);
    if (Clock::now() >= st.give_up) return false;
  }
  return true;
}

std::size_t count_lines(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

void run_writer(LogState& st) {
  struct stat sb {};
  const bool socket = ::fstat(st.fd, &sb) == 0 && S_ISSOCK(sb.st_mode);
  uint64_t reported = 0;
  std::string batch;
  for (;;) {
    {
      std::unique_lock lock(st.mu);
      st.cv.wait(lock, [&] { return !st.pending.empty() || st.stopping; });
      if (st.pending.empty()) break;
      batch.swap(st.pending);
      st.pending.clear();
    }
    // Say once that lines were lost, as soon as the sink takes lines again.
    const uint64_t dropped = st.dropped.load(std::memory_order_relaxed);
    if (dropped > reported) {
      fmt::memory_buffer note;
      format_line(note, LogLevel::warn,
                  fmt::format("log: {} lines dropped: the log sink was not keeping up",
                              dropped - reported));
      batch.insert(0, note.data(), note.size());
      reported = dropped;
    }
    if (!write_out(st, socket, batch)) {
      st.dropped.fetch_add(count_lines(batch), std::memory_order_relaxed);
      std::lock_guard lock(st.mu);
      if (st.stopping) break;
    }
    batch.clear();
    if (batch.capacity() > st.capacity) std::string().swap(batch);
  }
  std::lock_guard lock(st.mu);
  st.done = true;
  st.exited.notify_all();
}

}  // namespace

void log_configure(LogFormat format, LogLevel level, std::string_view name) {
  LogConfig& cfg = config();
  cfg.format.store(format, std::memory_order_relaxed);
  cfg.level.store(level, std::memory_order_relaxed);
  cfg.name = std::string(name);
}

bool log_enabled(LogLevel level) noexcept {
  return level <= config().level.load(std::memory_order_relaxed);
}

std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::error: return "error";
    case LogLevel::warn: return "warn";
    case LogLevel::info: return "info";
    case LogLevel::debug: return "debug";
  }
  return "?";
}

void log_message(LogLevel level, std::string_view msg) noexcept {
  try {
    fmt::memory_buffer buf;
    format_line(buf, level, msg);
    log_submit({buf.data(), buf.size()});
  } catch (...) {
    log_submit({});
  }
}

void log_counters(std::string_view what, std::string_view pairs) noexcept {
  try {
    fmt::memory_buffer buf;
    begin_line(buf, LogLevel::info);
    if (!json()) {
      fmt::format_to(std::back_inserter(buf), "{} {}\n", what, pairs);
      log_submit({buf.data(), buf.size()});
      return;
    }
    fmt::format_to(std::back_inserter(buf), ",\"msg\":");
    append_json_string(buf, what);
    while (!pairs.empty()) {
      const std::size_t sp = std::min(pairs.find(' '), pairs.size());
      const std::string_view pair = pairs.substr(0, sp);
      pairs.remove_prefix(std::min(sp + 1, pairs.size()));
      const std::size_t eq = pair.find('=');
      if (eq == std::string_view::npos) continue;
      fmt::format_to(std::back_inserter(buf), ",");
      append_json_string(buf, pair.substr(0, eq));
      // Every value is a count; anything else would be quoted rather than break the line.
      const std::string_view value = pair.substr(eq + 1);
      const bool number = !value.empty() && value.find_first_not_of("0123456789") == value.npos;
      if (number) {
        fmt::format_to(std::back_inserter(buf), ":{}", value);
      } else {
        fmt::format_to(std::back_inserter(buf), ":");
        append_json_string(buf, value);
      }
    }
    fmt::format_to(std::back_inserter(buf), "}}\n");
    log_submit({buf.data(), buf.size()});
  } catch (...) {
    log_submit({});
  }
}

void log_connection(const ConnectionLog& c) noexcept {
  if (!log_enabled(LogLevel::info)) return;
  try {
    fmt::memory_buffer buf;
    begin_line(buf, LogLevel::info);
    if (json()) {
      fmt::format_to(std::back_inserter(buf), ",\"msg\":\"connection closed\",\"peer\":");
      append_json_string(buf, c.peer);
      fmt::format_to(std::back_inserter(buf),
                     ",\"outcome\":\"{}\",\"requests\":{},\"bytes_in\":{},\"bytes_out\":{},"
                     "\"duration_ms\":{:.3f}}}",
                     c.outcome, c.requests, c.bytes_in, c.bytes_out, c.duration_ms);
    } else {
      fmt::format_to(std::back_inserter(buf),
                     "{} closed: {} ({} {}, {} bytes in, {} out, {:.1f} ms)", c.peer, c.outcome,
                     c.requests, c.requests == 1 ? "reply" : "replies", c.bytes_in, c.bytes_out,
                     c.duration_ms);
    }
    buf.push_back('\n');
    log_submit({buf.data(), buf.size()});
  } catch (...) {
    log_submit({});
  }
}

void log_submit(std::string_view line) noexcept {
  LogState& st = state();
  if (line.empty()) {
    st.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::unique_lock lock(st.mu);
  if (st.mode == SinkMode::direct) {
    lock.unlock();
    write_direct(line);
    return;
  }
  if (st.mode == SinkMode::closed || st.pending.size() + line.size() > st.capacity) {
    st.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const bool was_empty = st.pending.empty();
  try {
    st.pending.append(line);
  } catch (...) {
    st.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  lock.unlock();
  if (was_empty) st.cv.notify_one();
}

uint64_t log_dropped() noexcept {
  return state().dropped.load(std::memory_order_relaxed);
}

LogWriter::LogWriter(int fd, std::size_t capacity) {
  LogState& st = state();
  {
    std::lock_guard lock(st.mu);
    st.fd = fd;
    st.capacity = capacity;
    st.pending.reserve(capacity);
    st.mode = SinkMode::buffered;
  }
  try {
    thread_ = std::thread([&st] { run_writer(st); });
  } catch (const std::system_error& e) {
    std::lock_guard lock(st.mu);
    st.mode = SinkMode::direct;
    throw std::system_error(e.code(), "cannot start the log writer");
  }
}

LogWriter::~LogWriter() {
  LogState& st = state();
  std::unique_lock lock(st.mu);
  st.stopping = true;
  st.give_up = Clock::now() + kFlushTimeout;
  st.cv.notify_one();
  // The writer never blocks in a write, so it ends within the flush time plus one poll slice.
  const bool ended = st.exited.wait_for(lock, kFlushTimeout * 2, [&] { return st.done; });
  st.mode = SinkMode::closed;
  lock.unlock();
  if (ended) {
    thread_.join();
  } else {
    thread_.detach();  // a sink that blocks even a bounded write: exit without it
  }
}

}  // namespace tcpd
