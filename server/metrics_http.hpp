#pragma once

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "fd.hpp"

namespace tcpd {

// `--metrics ADDR:PORT`: one small thread that answers GET /metrics with `render()`. It watches
// up to 16 scrapers' connections at once (poll), each bounded to a second and 8 KiB of
// request; when another connects the oldest goes. So a scraper that says nothing or reads slowly
// delays neither another scrape nor the workers.
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
  struct Scrape;
  void run();
  void accept_scraper(std::vector<Scrape>& open);
  void step(Scrape& c);

  std::function<std::string()> render_;
  Fd listener_;
  Fd stop_;
  std::thread thread_;
};

// Splits "host:port", "[v6]:port" or ":port". Throws std::invalid_argument naming what is wrong.
std::pair<std::string, uint16_t> split_host_port(const std::string& address);

}  // namespace tcpd
