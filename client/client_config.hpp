#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "clock.hpp"

namespace tcpd {

struct ClientConfig {
  std::string host = "localhost";
  uint16_t port = 12345;
  std::string msg = "Hello from the client!";  // "-": one request per stdin line
  Millis timeout{5000};
  bool quiet = false;
  // Load mode.
  uint64_t count = 1;
  std::optional<double> duration_s;
  unsigned concurrency = 1;
  bool keepalive = false;
  double rate = 0;  // requests/s in total; 0 = closed loop
  std::optional<std::string> expect;
  bool json = false;

  [[nodiscard]] bool load_mode() const {
    return count > 1 || duration_s.has_value() || concurrency > 1 || rate > 0 || json;
  }
  [[nodiscard]] bool stdin_mode() const { return msg == "-"; }
};

}  // namespace tcpd
