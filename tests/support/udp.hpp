#pragma once

// UDP peers for tests, on loopback: a client socket, and a misbehaving echo server that drops,
// duplicates and reorders on purpose. Every wait is bounded.

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "fd.hpp"

namespace testing_support {

class UdpPeer {
 public:
  // A socket of `family` bound to `address`:`port` (port 0: any); invalid when that fails.
  explicit UdpPeer(int family = AF_INET, const std::string& address = "", uint16_t port = 0);
  [[nodiscard]] bool valid() const { return fd_.valid(); }
  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] int bind_errno() const { return bind_errno_; }
  // Connects to `address`:`port`: from then on only datagrams from there are received.
  bool connect(const std::string& address, int port);
  bool send_to(const std::string& address, int port, const std::string& data);
  bool send(const std::string& data);  // connected
  // The next datagram within `timeout`, and where it came from.
  std::optional<std::string> receive(std::chrono::milliseconds timeout,
                                     std::string* from = nullptr);

 private:
  tcpd::Fd fd_;
  int family_;
  int bind_errno_ = 0;
};

// An echo server on 127.0.0.1 that, of the datagrams it receives (numbered from 0), drops those
// with n % 10 == 3, answers those with n % 10 == 5 twice, and holds those with n % 10 == 7
// until it has answered the next one (so they arrive late).
class LossyEcho {
 public:
  LossyEcho();
  ~LossyEcho();
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] uint64_t received() const { return received_.load(); }

 private:
  void run();
  tcpd::Fd fd_;
  tcpd::Fd wake_;
  int port_ = 0;
  std::atomic<uint64_t> received_{0};
  std::thread thread_;
};

}  // namespace testing_support
