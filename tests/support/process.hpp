#pragma once

// A child process for tests: the real tcpd/tcpc/python binaries, with stdin/stdout/stderr on
// pipes. Every wait is bounded; the destructor kills the child by PID and reaps it.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace testing_support {

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  int signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
};

// How to start a child, for tests that need a hostile environment.
struct Spawn {
  long limit_fds = 0;            // > 0: RLIMIT_NOFILE in the child (descriptor exhaustion)
  long limit_procs = 0;          // > 0: RLIMIT_NPROC in the child (thread creation fails)
  bool as_nobody = false;        // run as uid/gid 65534 (root ignores RLIMIT_NPROC)
  bool read_stderr = true;       // false: stderr is a pipe this side never reads (a blocked log)
  std::vector<std::string> env;  // extra "NAME=value" entries (replacing inherited ones)
  // >= 0: passed as descriptor 3 with LISTEN_FDS=1 and LISTEN_PID=<the child>, as systemd's
  // socket activation does. The caller keeps its own copy.
  int listen_fd = -1;
  // >= 0: a second socket passed the same way, as descriptor 4 (3 without listen_fd), with
  // LISTEN_FDS counting both: a .socket unit with ListenStream= and ListenDatagram=.
  int udp_fd = -1;
};

class Process {
 public:
  // `limit_fds` > 0 sets RLIMIT_NOFILE in the child (for descriptor-exhaustion tests).
  explicit Process(std::vector<std::string> argv, long limit_fds = 0);
  Process(std::vector<std::string> argv, const Spawn& how);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  // Next line of stdout (without '\n'), or nullopt on EOF / timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  // Waits until stderr contains `needle`; returns all stderr read so far either way.
  bool wait_stderr(const std::string& needle, std::chrono::milliseconds timeout);
  // Starts reading a stderr that was left unread (Spawn::read_stderr = false).
  void resume_stderr();
  void write_stdin(const std::string& data);
  void close_stdin();
  void signal(int sig);
  // Waits for exit, collecting the rest of stdout/stderr. Kills it with SIGKILL on timeout.
  RunResult wait(std::chrono::milliseconds timeout);
  [[nodiscard]] const std::string& err() const { return err_; }
  [[nodiscard]] const std::string& out() const { return out_; }

 private:
  void pump(int timeout_ms);
  pid_t pid_ = -1;
  int in_ = -1, outp_ = -1, errp_ = -1;
  int unread_err_ = -1;  // the read end of a stderr pipe nobody reads (Spawn::read_stderr)
  std::string out_, err_;

 public:
  // Builds the argv for tcpd with --port 0 --bind 127.0.0.1 unless given.
  static std::vector<std::string> tcpd_argv(std::vector<std::string> args);

 private:
  std::size_t out_pos_ = 0;
  bool reaped_ = false;
  RunResult result_;
};

// Runs to completion with `input` on stdin.
RunResult run(std::vector<std::string> argv, std::chrono::milliseconds timeout,
              const std::string& input = {});

// Starts tcpd with `args` (plus --port 0 --bind 127.0.0.1 unless given) and reads its port from
// the "listening on" line.
struct Tcpd {
  explicit Tcpd(std::vector<std::string> args, long limit_fds = 0);
  Tcpd(std::vector<std::string> args, const Spawn& how);
  ~Tcpd();
  Tcpd(const Tcpd&) = delete;
  Tcpd& operator=(const Tcpd&) = delete;
  std::unique_ptr<Process> proc;
  int port = 0;
};

}  // namespace testing_support
