#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "clock.hpp"
#include "fd.hpp"
#include "server_config.hpp"
#include "udp_guard.hpp"
#include "udp_stats.hpp"
#include "worker_pool.hpp"

namespace tcpd {

// The UDP threads: --udp-workers, or one per CPU tcpd may run on (at most --workers; all of
// --workers with --delay-ms).
unsigned udp_threads(const ServerConfig& cfg);

// --udp: datagrams on the TCP listener's address and port. A fixed set of threads, each blocking
// in recvmmsg(2) for a batch and answering it with one sendmmsg(2): one datagram is one request
// and its reply one datagram. All threads share one socket, or (--udp-socket reuseport) each
// owns a socket of an SO_REUSEPORT group that the kernel spreads sources over; docs/DESIGN.md
// has the measurement that chose. An inherited socket is always shared.
class UdpService {
 public:
  // Binds now, so that a port in use fails here: `tcp_listener`'s address and port, with its
  // dual-stack setting; or serves `cfg.udp_fd` (socket activation). Throws std::system_error.
  UdpService(const ServerConfig& cfg, int tcp_listener);
  ~UdpService();
  UdpService(const UdpService&) = delete;
  UdpService& operator=(const UdpService&) = delete;

  void start();
  // Stops reading: every thread answers what it has read (its --delay-ms cut at `deadline`) and
  // returns. Safe to call more than once.
  void begin_drain(Clock::time_point deadline);
  void join();

  [[nodiscard]] UdpSnapshot snapshot() const;
  [[nodiscard]] std::string address() const { return address_; }
  [[nodiscard]] std::size_t sources_tracked() const;
  [[nodiscard]] unsigned threads() const { return threads_; }

 private:
  struct Socket {
    Fd fd;
    bool inherited = false;
    // The kernel's drop count for this socket, as the last datagram read reported it.
    std::atomic<uint32_t> kernel_drops{0};
  };

  void work(unsigned index);
  void answer(class UdpBatch& batch, int n, Socket& sock, UdpSlot& slot);
  void pause(Clock::time_point until) const;
  // --allow/--deny for a datagram's source.
  [[nodiscard]] bool allowed(const sockaddr* source) const;

  const ServerConfig& cfg_;
  unsigned threads_;
  std::string address_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  std::unique_ptr<UdpSlot[]> slots_;
  std::optional<SourceRateLimiter> limiter_;
  Fd wake_;  // raised by begin_drain(): a --delay-ms pause ends
  std::atomic<bool> draining_{false};
  std::atomic<Clock::rep> deadline_{0};
  WorkerPool pool_;
};

}  // namespace tcpd
