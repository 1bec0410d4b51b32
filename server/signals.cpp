#include "signals.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <system_error>

#include "log.hpp"

namespace tcpd {
namespace {

sigset_t server_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void block_server_signals() {
  // A client that vanishes mid-reply must cost an EPIPE, never the process. (Sends also pass
  // MSG_NOSIGNAL; this covers anything that does not.)
  std::signal(SIGPIPE, SIG_IGN);
  // A shell starts a background job of a script (`tcpd &`) with SIGINT and SIGQUIT ignored, and
  // an ignored signal is discarded before a signalfd can read it: the drain on SIGINT and the
  // core dump on SIGQUIT must not depend on how tcpd was started.
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGQUIT}) std::signal(sig, SIG_DFL);
  sigset_t set = server_signals();
  if (int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    throw std::system_error(rc, std::generic_category(), "pthread_sigmask");
  }
}

SignalThread::SignalThread(std::function<void()> on_stop, std::function<void()> on_report,
                           std::function<void()> on_tick)
    : on_stop_(std::move(on_stop)), on_report_(std::move(on_report)), on_tick_(std::move(on_tick)) {
  sigset_t set = server_signals();
  signal_fd_ = Fd(::signalfd(-1, &set, SFD_CLOEXEC));
  quit_fd_ = Fd(::eventfd(0, EFD_CLOEXEC));
  if (!signal_fd_ || !quit_fd_) {
    throw std::system_error(errno, std::generic_category(), "signalfd");
  }
  thread_ = std::thread([this] { run(); });
}

SignalThread::~SignalThread() {
  uint64_t one = 1;
  [[maybe_unused]] auto rc = ::write(quit_fd_.get(), &one, sizeof one);
  thread_.join();
}

void SignalThread::run() {
  int stops = 0;
  for (;;) {
    std::array<pollfd, 2> p{{{signal_fd_.get(), POLLIN, 0}, {quit_fd_.get(), POLLIN, 0}}};
    const int rc = ::poll(p.data(), p.size(), on_tick_ ? 1000 : -1);
    if (rc < 0) continue;  // EINTR
    if (rc == 0) {
      on_tick_();
      continue;
    }
    if (p[1].revents & POLLIN) return;
    signalfd_siginfo info{};
    if (::read(signal_fd_.get(), &info, sizeof info) != sizeof info) continue;
    const int sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGUSR1) {
      on_report_();
    } else if (sig == SIGHUP) {
      // A terminal hang-up or a habitual "reload" must not kill a daemon; there is no
      // configuration file to read again.
      log_at(LogLevel::warn,
             "SIGHUP: nothing to reload (tcpd has no configuration file); carrying on");
    } else if (++stops == 1) {
      log_at(LogLevel::warn, "{}: stopping; draining (a second signal exits at once)",
             strsignal(sig));
      on_stop_();
    } else {
      log_at(LogLevel::warn, "{} again: exiting now", strsignal(sig));
      ::_exit(128 + sig);
    }
  }
}

}  // namespace tcpd
