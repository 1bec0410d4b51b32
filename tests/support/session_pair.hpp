#pragma once

// A session on one end of a socketpair and the environment a worker serves it with: for unit
// tests of the parked set and the session protocol without a server.

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>

#include "eventfd.hpp"
#include "parked.hpp"
#include "session.hpp"

namespace testing_support {

struct SessionTestEnv {
  tcpd::ServerConfig config;
  tcpd::Stats stats{1};
  tcpd::Fd stop = tcpd::make_eventfd();
  std::atomic<bool> draining{false};
  std::atomic<tcpd::Clock::rep> drain_deadline{0};
  tcpd::SessionEnv env{config, stats, stats.shared(), stop.get(), draining, drain_deadline};
  SessionTestEnv() { config.log_level = tcpd::LogLevel::warn; }
};

// `peer` is the client's end.
struct SessionPair {
  tcpd::Session session;
  tcpd::Fd peer;
};

inline SessionPair make_session_pair(tcpd::Clock::duration idle = std::chrono::seconds(10),
                                     std::size_t max_message = 1024) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  tcpd::Session s(tcpd::Fd(sv[0]), max_message, tcpd::Clock::now(),
                  std::chrono::duration_cast<tcpd::Millis>(idle));
  return {std::move(s), tcpd::Fd(sv[1])};
}

// Waits on `p` until it hands out a session or `limit` passes.
inline std::optional<tcpd::Session> next_session(
    tcpd::Parked& p, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto end = tcpd::Clock::now() + limit;
  while (tcpd::Clock::now() < end) {
    auto w = p.wait(20);
    if (w.session) return std::move(w.session);
  }
  return std::nullopt;
}

}  // namespace testing_support
