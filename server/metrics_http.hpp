#pragma once

#include <functional>
#include <string>
#include <thread>

#include "fd.hpp"

namespace tcpd {

// `--metrics ADDR:PORT`: one small thread that answers GET /metrics with `render()`, one
// connection at a time, each bounded to a second and 8 KiB of request, so that a scraper that
// says nothing or reads slowly delays another scrape by at most that, and the workers never.
class MetricsServer {
 public:
  // Binds now: an unusable address throws std::system_error naming it ("--metrics: cannot bind
  // to 127.0.0.1:9100: Address already in use"). "ADDR:PORT", "[::1]:PORT" or ":PORT" (all).
  MetricsServer(const std::string& address, std::function<std::string()> render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  void start();
  [[nodiscard]] std::string address() const;

 private:
  void run();
  void serve(Fd conn);

  std::function<std::string()> render_;
  Fd listener_;
  Fd stop_;
  std::thread thread_;
};

// Splits "host:port", "[v6]:port" or ":port". Throws std::invalid_argument naming what is wrong.
std::pair<std::string, uint16_t> split_host_port(const std::string& address);

}  // namespace tcpd
