#pragma once

// Loopback clients and an in-process server for the integration tests. Every call is bounded
// in time.

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "fd.hpp"
#include "server.hpp"
#include "server_config.hpp"

namespace testing_support {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;

class Client {
 public:
  Client() = default;
  explicit Client(tcpd::Fd fd) : fd_(std::move(fd)) {}
  // Connects to 127.0.0.1:port; an invalid Client when that fails.
  static Client connect(int port, Ms timeout = 5s);

  [[nodiscard]] bool valid() const { return fd_.valid(); }
  [[nodiscard]] int fd() const { return fd_.get(); }
  bool send(const std::string& data, Ms timeout = 5s);
  // Up to and including '\n'; nullopt on timeout or EOF before a newline (see `rest()`).
  std::optional<std::string> line(Ms timeout = 5s);
  // Everything until EOF; nullopt on timeout or reset.
  std::optional<std::string> until_eof(Ms timeout = 5s);
  // True when the server closes (EOF or reset) within the timeout; bytes read go to rest().
  bool closed_within(Ms timeout);
  void shutdown_write();
  // Closes with RST instead of FIN (SO_LINGER 0).
  void reset();
  [[nodiscard]] const std::string& rest() const { return buf_; }

 private:
  tcpd::Fd fd_;
  std::string buf_;
};

// A tcpd Server on 127.0.0.1 and a free port, accepting on its own thread.
class InProcessServer {
 public:
  explicit InProcessServer(tcpd::ServerConfig cfg);
  ~InProcessServer();
  [[nodiscard]] int port() const { return port_; }
  tcpd::Server& server() { return *server_; }
  // Stops and joins; the stats are final afterwards.
  void stop();

 private:
  std::unique_ptr<tcpd::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

tcpd::ServerConfig test_config();
// Open descriptors of this process.
int open_fds();
// Polls `pred` every few ms until it holds or the timeout passes.
template <typename Pred>
bool eventually(Pred pred, Ms timeout = 5s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) return pred();
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

}  // namespace testing_support
