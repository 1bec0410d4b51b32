#include "metrics_http.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "clock.hpp"
#include "eventfd.hpp"
#include "log.hpp"
#include "socket.hpp"
#include "tuning.hpp"
#include "value_checks.hpp"

namespace tcpd {
namespace {

struct Request {
  bool complete = false;
  std::string method, path, version;
};

bool headers_complete(const std::string& buf) {
  return buf.find("\r\n\r\n") != std::string::npos || buf.find("\n\n") != std::string::npos;
}

Request parse_request(const std::string& buf) {
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

std::string answer(const Request& req, const std::function<std::string()>& render) {
  const bool http = req.version == "HTTP/1.0" || req.version == "HTTP/1.1";
  const std::string version = http ? req.version : "HTTP/1.1";
  const bool head = req.method == "HEAD";
  if (!http || req.path.empty() || req.path.front() != '/') {
    return response(version, "400 Bad Request", "text/plain", "bad request\n", false);
  }
  if (req.method != "GET" && !head) {
    return response(version, "405 Method Not Allowed", "text/plain", "GET /metrics\n", false);
  }
  if (req.path.substr(0, req.path.find('?')) != "/metrics") {
    return response(version, "404 Not Found", "text/plain", "try /metrics\n", head);
  }
  return response(version, "200 OK", "text/plain; version=0.0.4; charset=utf-8", render(), head);
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

// One scraper's connection: its request as it arrives, then its response as it leaves.
struct MetricsServer::Scrape {
  Fd fd;
  Clock::time_point deadline;
  std::string in;
  std::string out;
  std::size_t sent = 0;
};

void MetricsServer::run() {
  std::vector<Scrape> open;
  std::vector<pollfd> p;
  for (;;) {
    p.assign({{stop_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}});
    auto next = Clock::time_point::max();
    for (const auto& c : open) {
      p.push_back({c.fd.get(), static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
      next = std::min(next, c.deadline);
    }
    if (::poll(p.data(), p.size(), poll_timeout_ms(next)) < 0) continue;
    if (p[0].revents != 0) return;
    // Connections first: accept() may drop the oldest, which would shift the indices.
    for (std::size_t i = 0; i < open.size(); ++i) {
      if (p[i + 2].revents != 0) step(open[i]);
    }
    const auto now = Clock::now();
    std::erase_if(open, [now](const Scrape& c) { return !c.fd || now >= c.deadline; });
    if (p[1].revents != 0) accept_scraper(open);
  }
}

// A new scraper. At the cap the oldest connection goes: a scraper that hangs must not keep a
// live one out.
void MetricsServer::accept_scraper(std::vector<Scrape>& open) {
  Fd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!conn) {
    // Out of descriptors: the workers' clients come first; look again shortly, unless stopped.
    if (errno == EMFILE || errno == ENFILE)
      wait_readable(stop_.get(), Clock::now() + kMetricsNoFdPause);
    return;
  }
  if (open.size() >= kMaxScrapers) open.erase(open.begin());
  open.push_back({std::move(conn), Clock::now() + kScrapeTimeout, {}, {}, 0});
}

// Reads what came, answers a complete request, or sends more of the answer. The connection is
// closed (its Fd reset) when it is done, broken, or its request grows too large.
void MetricsServer::step(Scrape& c) {
  if (!c.out.empty()) {
    IoResult r = write_all(c.fd.get(), std::string_view(c.out).substr(c.sent), Clock::time_point{});
    c.sent += r.bytes;
    if (r.status != IoStatus::timed_out) {
      ::shutdown(c.fd.get(), SHUT_WR);
      c.fd.reset();
    }
    return;
  }
  char tmp[2048];
  IoResult r = read_some(c.fd.get(), tmp, sizeof tmp, Clock::time_point{});
  if (r.status == IoStatus::timed_out) return;
  if (r.status != IoStatus::ok || c.in.size() + r.bytes > kMaxScrapeRequest) {
    c.fd.reset();
    return;
  }
  c.in.append(tmp, r.bytes);
  if (!headers_complete(c.in)) return;
  try {
    c.out = answer(parse_request(c.in), render_);
  } catch (const std::exception& e) {
    log_at(LogLevel::error, "metrics: {}", e.what());
    c.fd.reset();
    return;
  }
  step(c);
}

}  // namespace tcpd
