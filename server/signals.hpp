#pragma once

#include <functional>
#include <thread>

#include "fd.hpp"

namespace tcpd {

// Blocks SIGINT, SIGTERM, SIGUSR1 and SIGHUP in the calling thread (and so in every thread it
// starts afterwards) and ignores SIGPIPE. Call first thing in main().
void block_server_signals();

// A thread that takes the blocked signals from a signalfd: the first SIGINT/SIGTERM calls
// `on_stop`, a second one exits the process at once with 128+signal; SIGUSR1 calls `on_report`;
// SIGHUP is logged and otherwise ignored.
class SignalThread {
 public:
  // `on_tick`, when given, runs about once a second (systemd's STATUS= line).
  SignalThread(std::function<void()> on_stop, std::function<void()> on_report,
               std::function<void()> on_tick = {});
  ~SignalThread();
  SignalThread(const SignalThread&) = delete;
  SignalThread& operator=(const SignalThread&) = delete;

 private:
  void run();
  std::function<void()> on_stop_;
  std::function<void()> on_report_;
  std::function<void()> on_tick_;
  Fd signal_fd_;
  Fd quit_fd_;
  std::thread thread_;
};

}  // namespace tcpd
