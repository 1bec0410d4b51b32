#include "metrics_http.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "clock.hpp"
#include "eventfd.hpp"
#include "log.hpp"
#include "socket.hpp"
#include "value_checks.hpp"

namespace tcpd {
namespace {

constexpr Millis kScrapeTimeout{1000};
constexpr std::size_t kMaxRequest = 8192;

struct Request {
  bool complete = false;
  std::string method, path, version;
};

// Reads up to the blank line that ends the headers, bounded in time and size.
Request read_request(int fd, Clock::time_point deadline) {
  std::string buf;
  char tmp[2048];
  while (buf.find("\r\n\r\n") == std::string::npos && buf.find("\n\n") == std::string::npos) {
    if (buf.size() > kMaxRequest) return {};
    IoResult r = read_some(fd, tmp, sizeof tmp, deadline);
    if (r.status != IoStatus::ok) return {};
    buf.append(tmp, r.bytes);
  }
  Request req;
  req.complete = true;
  const auto eol = buf.find_first_of("\r\n");
  const std::string line = buf.substr(0, eol);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) return req;
  req.method = line.substr(0, sp1);
  req.path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  req.version = line.substr(sp2 + 1);
  return req;
}

std::string response(std::string_view version, std::string_view status, std::string_view type,
                     std::string_view body, bool head) {
  std::string out =
      fmt::format("{} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                  version, status, type, body.size());
  if (!head) out += body;
  return out;
}

}  // namespace

std::pair<std::string, uint16_t> split_host_port(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("expected ADDR:PORT");
  const std::string port = address.substr(colon + 1);
  if (std::string problem = check_integer(port, 0, 65535); !problem.empty()) {
    throw std::invalid_argument("port " + problem);
  }
  return {strip_brackets(address.substr(0, colon)), static_cast<uint16_t>(std::stoi(port))};
}

MetricsServer::MetricsServer(const std::string& address, std::function<std::string()> render)
    : render_(std::move(render)), stop_(make_eventfd()) {
  try {
    auto [host, port] = split_host_port(address);
    listener_ = listen_tcp(host, port, 64);
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), std::string("--metrics: ") + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("--metrics " + address + ": " + e.what());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string("--metrics: ") + e.what());
  }
  ::fcntl(listener_.get(), F_SETFL, ::fcntl(listener_.get(), F_GETFL) | O_NONBLOCK);
}

MetricsServer::~MetricsServer() {
  raise_eventfd(stop_.get());
  if (thread_.joinable()) thread_.join();
}

void MetricsServer::start() {
  thread_ = std::thread([this] { run(); });
}

std::string MetricsServer::address() const {
  return local_address(listener_.get());
}

void MetricsServer::run() {
  for (;;) {
    std::array<pollfd, 2> p{{{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}}};
    if (::poll(p.data(), p.size(), -1) < 0) continue;
    if (p[1].revents != 0) return;
    Fd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      // Out of descriptors: the workers' clients come first; look again shortly, unless stopped.
      if (errno == EMFILE || errno == ENFILE) {
        wait_readable(stop_.get(), Clock::now() + Millis{100});
      }
      continue;
    }
    try {
      serve(std::move(conn));
    } catch (const std::exception& e) {
      log_at(LogLevel::error, "metrics: {}", e.what());
    }
  }
}

void MetricsServer::serve(Fd conn) {
  const auto deadline = Clock::now() + kScrapeTimeout;
  Request req = read_request(conn.get(), deadline);
  if (!req.complete) return;  // silent, too slow or too large: just close
  const bool http = req.version == "HTTP/1.0" || req.version == "HTTP/1.1";
  const std::string version = http ? req.version : "HTTP/1.1";
  const bool head = req.method == "HEAD";
  std::string out;
  if (!http || req.path.empty() || req.path.front() != '/') {
    out = response(version, "400 Bad Request", "text/plain", "bad request\n", false);
  } else if (req.method != "GET" && !head) {
    out = response(version, "405 Method Not Allowed", "text/plain", "GET /metrics\n", false);
  } else if (req.path.substr(0, req.path.find('?')) != "/metrics") {
    out = response(version, "404 Not Found", "text/plain", "try /metrics\n", head);
  } else {
    out = response(version, "200 OK", "text/plain; version=0.0.4; charset=utf-8", render_(), head);
  }
  write_all(conn.get(), out, deadline);
  ::shutdown(conn.get(), SHUT_WR);
}

}  // namespace tcpd
