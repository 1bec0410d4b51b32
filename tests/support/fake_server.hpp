#pragma once

// Misbehaving servers for client tests, on 127.0.0.1 and a free port.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fd.hpp"

namespace testing_support {

class FakeServer {
 public:
  enum class Kind {
    stall,  // accepts and never answers
    reset,  // reads the request, then closes with RST
    reply,  // reads the request, answers `text` and closes
    // reads the request, answers `text`, shuts its sending side and keeps the connection open
    // without reading: a TCP proxy whose backend has gone
    half_close,
    trickle,  // reads the request, then sends one byte every 100 ms, never a newline
    flood,    // reads the request, answers `text`, then sends up to 256 MiB without a newline
    // waits until `text` (a number, N) whole lines have arrived, then answers each with itself,
    // and again for the next N: only a client with N requests in flight gets replies ("N,close":
    // the connection is closed after each batch)
    batch,
  };
  explicit FakeServer(Kind kind, std::string text = {});
  ~FakeServer();
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int accepted() const { return accepted_.load(); }
  // How many different client addresses (IPv4, port aside) it has accepted from.
  [[nodiscard]] std::size_t distinct_peers() const;
  // batch: every line received, in order.
  [[nodiscard]] std::vector<std::string> lines() const;

 private:
  void run();
  void send_until_gone(tcpd::Fd c);
  void answer_in_batches(tcpd::Fd c);
  Kind kind_;
  std::string text_;
  tcpd::Fd listener_;
  tcpd::Fd stop_;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  mutable std::mutex mu_;
  std::set<uint32_t> peers_;
  std::vector<std::string> lines_;
  std::vector<tcpd::Fd> held_;
  std::vector<std::thread> senders_;  // trickle and flood: one per connection
  std::thread thread_;
};

// A port on 127.0.0.1 with nothing listening on it (bound, then released).
int unused_port();

}  // namespace testing_support
