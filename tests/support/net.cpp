#include "net.hpp"

#include <dirent.h>
#include <sys/socket.h>

#include "socket.hpp"

namespace testing_support {

using tcpd::Clock;
using tcpd::IoStatus;

Client Client::connect(int port, Ms timeout) {
  auto r = tcpd::connect_tcp("127.0.0.1", static_cast<uint16_t>(port), Clock::now() + timeout);
  return Client(std::move(r.fd));
}

bool Client::send(const std::string& data, Ms timeout) {
  return tcpd::write_all(fd_.get(), data, Clock::now() + timeout).status == IoStatus::ok;
}

std::optional<std::string> Client::line(Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto nl = buf_.find('\n'); nl != std::string::npos) {
      std::string l = buf_.substr(0, nl + 1);
      buf_.erase(0, nl + 1);
      return l;
    }
    char tmp[65536];
    auto r = tcpd::read_some(fd_.get(), tmp, sizeof tmp, deadline);
    if (r.status != IoStatus::ok) return std::nullopt;
    buf_.append(tmp, r.bytes);
  }
}

std::optional<std::string> Client::until_eof(Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    char tmp[65536];
    auto r = tcpd::read_some(fd_.get(), tmp, sizeof tmp, deadline);
    if (r.status == IoStatus::closed) {
      std::string all = std::move(buf_);
      buf_.clear();
      return all;
    }
    if (r.status != IoStatus::ok) return std::nullopt;
    buf_.append(tmp, r.bytes);
  }
}

bool Client::closed_within(Ms timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    char tmp[65536];
    auto r = tcpd::read_some(fd_.get(), tmp, sizeof tmp, deadline);
    if (r.status == IoStatus::ok) {
      buf_.append(tmp, r.bytes);
      continue;
    }
    return r.status == IoStatus::closed || r.status == IoStatus::reset;
  }
}

void Client::shutdown_write() {
  ::shutdown(fd_.get(), SHUT_WR);
}

void Client::reset() {
  linger l{1, 0};
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  fd_.reset();
}

InProcessServer::InProcessServer(tcpd::ServerConfig cfg)
    : server_(std::make_unique<tcpd::Server>(std::move(cfg))) {
  port_ = server_->port();
  thread_ = std::thread([this] { server_->run(); });
}

InProcessServer::~InProcessServer() {
  stop();
}

void InProcessServer::stop() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

tcpd::ServerConfig test_config() {
  tcpd::ServerConfig cfg;
  cfg.bind = "127.0.0.1";
  cfg.port = 0;
  cfg.log_level = tcpd::LogLevel::warn;
  return cfg;
}

int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n - 3;  // ".", ".." and the directory's own descriptor
}

}  // namespace testing_support
