#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "fd.hpp"
#include "metrics.hpp"
#include "server_config.hpp"
#include "stats.hpp"
#include "udp_stats.hpp"

namespace tcpd {

// tcpd: the accepting thread waits on a non-blocking listener (and on new connections that
// have sent nothing yet) and hands each connection, through a bounded mutex-guarded queue, to a
// fixed pool of worker threads. A worker reads and answers with blocking calls once a client's
// bytes are there. A session with nothing to say (idle, part-way through a slow request, its
// replies waiting for room, its one-shot pause) is parked in one epoll set, holding no worker;
// idle workers take turns waiting on that set (see WorkQueue: leader/followers).
class Server {
 public:
  // Binds and listens now, so that a port in use fails here. Throws std::system_error.
  explicit Server(ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  [[nodiscard]] uint16_t port() const;
  [[nodiscard]] std::string address() const;  // "[::]:12345"

  // Starts the workers. Throws std::system_error naming the cause
  // ("cannot start 64 workers: Resource temporarily unavailable") with no thread left behind.
  // Call it before announcing the server: once it returns, connections are served.
  void start();
  // Accepts on the calling thread until stop() (calling start() first if needed), then drains:
  // serves what is already in the listen queue, closes the listener, finishes requests in
  // flight (bounded by the drain timeout) and joins every thread it started.
  void run();
  // Safe from any thread, any number of times, before or during run().
  void stop();

  [[nodiscard]] StatsSnapshot stats() const;
  [[nodiscard]] std::size_t parked() const;  // sessions holding no worker now
  [[nodiscard]] Gauges gauges() const;
  // With --udp: the datagrams' counters.
  [[nodiscard]] std::optional<UdpSnapshot> udp_stats() const;
  [[nodiscard]] std::size_t udp_sources_tracked() const;
  // The counters as the stats and summary lines print them: TCP's, then UDP's with --udp.
  [[nodiscard]] std::string counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tcpd
