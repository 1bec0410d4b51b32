#include "process.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

extern char** environ;

namespace testing_support {
namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// An inherited "NAME=value" that `extra` sets again: getenv() would find the first of the two.
bool overridden(const char* entry, const std::vector<std::string>& extra) {
  const char* eq = std::strchr(entry, '=');
  if (eq == nullptr) return false;
  const std::string_view name(entry, static_cast<std::size_t>(eq - entry) + 1);
  return std::any_of(extra.begin(), extra.end(),
                     [&](const std::string& e) { return e.starts_with(name); });
}

}  // namespace

Process::Process(std::vector<std::string> argv, long limit_fds)
    : Process(std::move(argv), Spawn{limit_fds}) {}

Process::Process(std::vector<std::string> argv, const Spawn& how) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) {
    throw std::runtime_error("pipe");
  }
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  // The environment is built before fork: between fork and exec only async-signal-safe calls.
  std::vector<std::string> env_strings(how.env);
  const int passed = (how.listen_fd >= 0 ? 1 : 0) + (how.udp_fd >= 0 ? 1 : 0);
  if (passed > 0) env_strings.emplace_back("LISTEN_FDS=" + std::to_string(passed));
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!overridden(*e, how.env)) envp.push_back(*e);
  }
  for (auto& e : env_strings) envp.push_back(e.data());
  char listen_pid[32] = "LISTEN_PID=";
  if (passed > 0) envp.push_back(listen_pid);
  envp.push_back(nullptr);
  // fork+exec rather than posix_spawn: the child may need a lower RLIMIT_NOFILE first. Between
  // fork and exec only async-signal-safe calls: everything else was prepared above.
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork");
  if (pid_ == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    if (how.limit_fds > 0) {
      rlimit rl{static_cast<rlim_t>(how.limit_fds), static_cast<rlim_t>(how.limit_fds)};
      ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (how.limit_procs > 0) {
      rlimit rl{static_cast<rlim_t>(how.limit_procs), static_cast<rlim_t>(how.limit_procs)};
      ::setrlimit(RLIMIT_NPROC, &rl);
    }
    if (how.as_nobody) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) {
        ::_exit(126);
      }
    }
    if (passed > 0) {
      // Copied out of the way first, so that placing one cannot overwrite the other.
      int next = 3;
      const int tcp = how.listen_fd >= 0 ? ::fcntl(how.listen_fd, F_DUPFD_CLOEXEC, 100) : -1;
      const int udp = how.udp_fd >= 0 ? ::fcntl(how.udp_fd, F_DUPFD_CLOEXEC, 100) : -1;
      if (tcp >= 0) ::dup2(tcp, next++);  // dup2 clears close-on-exec on the copy
      if (udp >= 0) ::dup2(udp, next++);
      // LISTEN_PID is this child's pid, written without malloc.
      char digits[16];
      int n = 0;
      for (pid_t v = ::getpid(); v > 0; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
      char* at = listen_pid + 11;
      while (n > 0) *at++ = digits[--n];
      *at = '\0';
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvpe(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  in_ = in[1];
  outp_ = out[0];
  if (how.read_stderr) {
    errp_ = err[0];
    ::fcntl(errp_, F_SETFL, O_NONBLOCK);
  } else {
    unread_err_ = err[0];
  }
  ::fcntl(outp_, F_SETFL, O_NONBLOCK);
}

Process::~Process() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  for (int fd : {in_, outp_, errp_, unread_err_}) {
    if (fd >= 0) ::close(fd);
  }
}

void Process::pump(int timeout_ms) {
  pollfd p[2] = {{outp_, POLLIN, 0}, {errp_, POLLIN, 0}};
  if (outp_ < 0 && errp_ < 0) {
    ::poll(nullptr, 0, timeout_ms);
    return;
  }
  if (::poll(p, 2, timeout_ms) <= 0) return;
  char buf[4096];
  for (int i = 0; i < 2; ++i) {
    if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP))) continue;
    for (;;) {
      ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n <= 0) {
        if (n == 0) {
          ::close(p[i].fd);
          (i == 0 ? outp_ : errp_) = -1;
        }
        break;
      }
      (i == 0 ? out_ : err_).append(buf, static_cast<std::size_t>(n));
    }
  }
}

std::optional<std::string> Process::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto nl = out_.find('\n', out_pos_);
    if (nl != std::string::npos) {
      std::string line = out_.substr(out_pos_, nl - out_pos_);
      out_pos_ = nl + 1;
      return line;
    }
    if (outp_ < 0 || Clock::now() >= deadline) return std::nullopt;
    pump(std::min(ms_left(deadline), 50));
  }
}

bool Process::wait_stderr(const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (err_.find(needle) == std::string::npos) {
    if (Clock::now() >= deadline || (errp_ < 0)) return err_.find(needle) != std::string::npos;
    pump(std::min(ms_left(deadline), 50));
  }
  return true;
}

void Process::resume_stderr() {
  if (unread_err_ < 0) return;
  errp_ = std::exchange(unread_err_, -1);
  ::fcntl(errp_, F_SETFL, O_NONBLOCK);
}

void Process::write_stdin(const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(in_, data.data() + off, data.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
}

void Process::close_stdin() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}

void Process::signal(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

RunResult Process::wait(std::chrono::milliseconds timeout) {
  if (reaped_) return result_;
  const auto deadline = Clock::now() + timeout;
  int st = 0;
  for (;;) {
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) break;
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
      result_.timed_out = true;
      break;
    }
    pump(20);
  }
  reaped_ = true;
  // Collect what is left in the pipes (bounded: the writer is gone).
  for (int i = 0; i < 50 && (outp_ >= 0 || errp_ >= 0); ++i) pump(20);
  if (WIFEXITED(st) && !result_.timed_out) result_.exit_code = WEXITSTATUS(st);
  if (WIFSIGNALED(st)) result_.signal = WTERMSIG(st);
  result_.out = out_;
  result_.err = err_;
  // A child built with a sanitizer reports on its stderr; any report fails the test.
  for (const char* marker :
       {"ThreadSanitizer", "AddressSanitizer", "LeakSanitizer", "runtime error:"}) {
    if (err_.find(marker) != std::string::npos) {
      ADD_FAILURE() << "sanitizer report from child " << pid_ << ":\n" << err_;
      break;
    }
  }
  return result_;
}

RunResult run(std::vector<std::string> argv, std::chrono::milliseconds timeout,
              const std::string& input) {
  Process p(std::move(argv));
  if (!input.empty()) p.write_stdin(input);
  p.close_stdin();
  return p.wait(timeout);
}

Tcpd::~Tcpd() {
  // Stop it the way a user does, so that a sanitizer build gets to report at exit.
  if (!proc) return;
  proc->signal(SIGTERM);
  auto r = proc->wait(std::chrono::seconds(30));
  if (r.timed_out) ADD_FAILURE() << "tcpd did not exit within 30 s of SIGTERM";
}

Tcpd::Tcpd(std::vector<std::string> args, long limit_fds)
    : Tcpd(std::move(args), Spawn{limit_fds}) {}

std::vector<std::string> Process::tcpd_argv(std::vector<std::string> args) {
  // TCPD_UNDER_TEST runs the suite against another build (e.g. an older one, to see that a
  // regression test fails without its fix).
  const char* other = std::getenv("TCPD_UNDER_TEST");
  std::vector<std::string> argv{other != nullptr ? other : TCPD_BIN};
  bool has_port = false, has_bind = false;
  for (auto& a : args) {
    has_port = has_port || a == "--port";
    has_bind = has_bind || a == "--bind";
  }
  if (!has_port) argv.insert(argv.end(), {"--port", "0"});
  if (!has_bind) argv.insert(argv.end(), {"--bind", "127.0.0.1"});
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Tcpd::Tcpd(std::vector<std::string> args, const Spawn& how) {
  proc = std::make_unique<Process>(Process::tcpd_argv(std::move(args)), how);
  // Sanitizer builds start slowly.
  auto line = proc->read_line(std::chrono::seconds(20));
  if (!line || line->rfind("listening on ", 0) != 0) {
    throw std::runtime_error("tcpd did not start: " + line.value_or("<no line>") + " " +
                             proc->err());
  }
  port = std::stoi(line->substr(line->rfind(':') + 1));
}

}  // namespace testing_support
