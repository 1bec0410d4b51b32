#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "clock.hpp"

namespace tcpd {

// A server to load: --host/--port, or one --target HOST:PORT.
struct Endpoint {
  std::string host;
  uint16_t port = 0;
};

struct ClientConfig {
  std::string host = "localhost";
  uint16_t port = 12345;
  std::string msg = "Hello from the client!";  // "-": one request per stdin line
  Millis timeout{5000};                        // connecting, and each request until its whole reply
  // A reply (or unasked-for input) longer than this is a failure, so that what a server sends
  // cannot grow tcpc's memory without bound.
  std::size_t max_reply = std::size_t{1} << 20;
  bool quiet = false;
  // Load mode.
  uint64_t count = 1;
  std::optional<double> duration_s;
  unsigned concurrency = 1;  // connections (in flight at once)
  unsigned threads = 0;      // --threads: event loops; 0 = one per CPU
  bool keepalive = false;
  double rate = 0;  // requests/s in total; 0 = closed loop
  std::optional<std::string> expect;
  bool json = false;
  // Requests sent in load mode, cycled: --msg, or a printable request of --size bytes, or the
  // lines of --msg-file (read by main before the run).
  std::vector<std::string> messages;
  std::string msg_file;                               // --msg-file, read into `messages` by main
  std::vector<double> percentiles{50, 90, 99, 99.9};  // --percentiles
  std::string histogram_file;                         // --histogram
  double warmup_s = 0;                                // --warmup, excluded from every figure
  double ramp_up_s = 0;   // --ramp-up: connections start spread over this long
  double interval_s = 0;  // --interval: a line per interval, and "intervals" in the JSON
  std::size_t size = 0;   // --size, 0 when not given
  // --target HOST:PORT, repeatable: connections are spread over them round-robin. Empty: the one
  // server of --host and --port.
  std::vector<Endpoint> targets;
  // --source ADDR, repeatable: local addresses bound before connecting, cycled over the
  // connections (each adds a 4-tuple space of ephemeral ports).
  std::vector<std::string> sources;
  unsigned pipeline = 1;  // --pipeline: requests in flight per keep-alive connection
  std::string hlog_file;  // --hlog: interval histograms in HdrHistogram's log format
  // --udp: datagrams instead of a connection.
  bool udp = false;
  unsigned retries = 0;    // --retries: single mode, datagrams sent again on no reply
  std::size_t rcvbuf = 0;  // --rcvbuf: SO_RCVBUF of each UDP socket; 0: the system's
  // --proxy-header 1|2: each one-shot connection begins with a PROXY header (as a balancer
  // would send), for measuring a server behind one; 0: none.
  int proxy_header = 0;
  // Thresholds (load mode): a violated one makes the exit status 3. Given twice, the stricter.
  std::optional<double> max_p99_ms;
  std::optional<double> max_p999_ms;
  std::optional<double> min_rps;
  std::optional<uint64_t> max_failed;

  [[nodiscard]] bool load_mode() const {
    return count > 1 || duration_s.has_value() || concurrency > 1 || threads > 0 || rate > 0 ||
           json || !messages.empty() || !msg_file.empty() || !histogram_file.empty() ||
           targets.size() > 1 || pipeline > 1 || !hlog_file.empty();
  }
  [[nodiscard]] bool stdin_mode() const { return msg == "-"; }
  // The servers of a load run: --target's, or --host:--port.
  [[nodiscard]] std::vector<Endpoint> endpoints() const {
    return targets.empty() ? std::vector<Endpoint>{{host, port}} : targets;
  }
};

}  // namespace tcpd
