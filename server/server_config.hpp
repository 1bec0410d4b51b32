#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "cidr.hpp"
#include "clock.hpp"
#include "log.hpp"

namespace tcpd {

enum class Mode { greet, echo };

struct ServerConfig {
  std::string bind;  // empty: every interface, IPv6 dual-stack where available
  uint16_t port = 12345;
  unsigned workers = 8;
  std::size_t queue = 1024;  // accepted connections waiting for a worker
  Mode mode = Mode::greet;
  std::string reply = "Hello from the server!";
  Millis delay{0};
  std::size_t max_message = 65536;
  Millis idle_timeout{10000};
  Millis io_timeout{5000};
  Millis drain_timeout{5000};
  // Before a connection's first newline, bytes followed by this much silence are one request,
  // answered without a newline and then closed (the tutorial's client); 0: every request needs
  // its newline.
  Millis oneshot_wait{20};
  LogLevel log_level = LogLevel::info;  // per-connection lines are info
  LogFormat log_format = LogFormat::text;
  std::string name;            // --name: tells instances apart in logs and metrics
  std::string metrics;         // --metrics ADDR:PORT; empty: off
  bool reuseport = false;      // --reuseport: SO_REUSEPORT, several processes share the port
  bool address_given = false;  // --bind or --port was on the command line
  // A listening socket inherited from systemd (socket activation); -1: bind `bind`:`port`.
  int listen_fd = -1;
  // --udp: datagrams too, on the TCP listener's address and port (or an inherited UDP socket).
  bool udp = false;
  int udp_fd = -1;                // a UDP socket inherited from systemd (ListenDatagram=)
  uint64_t udp_source_rate = 0;   // --udp-source-rate: replies/s to one source address; 0: no cap
  bool udp_shared_socket = true;  // --udp-socket: one socket for every UDP thread, or a group
  std::size_t udp_batch = 16;     // --udp-batch: datagrams per recvmmsg()
  unsigned udp_workers = 0;       // --udp-workers: UDP threads; 0: see udp_threads()
  // --proxy-protocol: every connection begins with a PROXY header from a --proxy-from address.
  bool proxy_protocol = false;
  Millis proxy_timeout{3000};
  // Who may send the header; null: no one (the CLI defaults to loopback, 127.0.0.0/8,::1/128).
  std::shared_ptr<const CidrSet> proxy_from;
  std::shared_ptr<const CidrSet> allow;  // null or empty: everyone not denied
  std::shared_ptr<const CidrSet> deny;
  unsigned max_conns_per_client = 0;  // 0: no limit
};

}  // namespace tcpd
