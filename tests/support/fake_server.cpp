#include "fake_server.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>

#include "socket.hpp"

namespace testing_support {

FakeServer::FakeServer(Kind kind, std::string text)
    : kind_(kind),
      text_(std::move(text)),
      listener_(tcpd::listen_tcp("127.0.0.1", 0, 128)),
      stop_(::eventfd(0, EFD_CLOEXEC)) {
  port_ = tcpd::local_port(listener_.get());
  thread_ = std::thread([this] { run(); });
}

FakeServer::~FakeServer() {
  uint64_t one = 1;
  [[maybe_unused]] auto rc = ::write(stop_.get(), &one, sizeof one);
  thread_.join();
  for (auto& t : senders_) t.join();
}

// trickle and flood: sends on `c` until the client goes, the bound is reached, or the server
// stops.
void FakeServer::send_until_gone(tcpd::Fd c) {
  if (kind_ == Kind::flood) ::send(c.get(), text_.data(), text_.size(), MSG_NOSIGNAL);
  const std::string chunk(kind_ == Kind::flood ? 65536 : 1, 'x');
  const std::size_t limit = std::size_t{256} << 20;
  for (std::size_t sent = 0; sent < limit;) {
    pollfd p[2] = {{c.get(), POLLOUT, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(p, 2, 100) < 0 || p[1].revents != 0) return;
    if (p[0].revents & (POLLERR | POLLHUP)) return;
    if (kind_ == Kind::trickle && p[0].revents != 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (p[0].revents == 0) continue;
    const ssize_t n = ::send(c.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN) return;
    if (n > 0) sent += static_cast<std::size_t>(n);
  }
}

void FakeServer::answer_in_batches(tcpd::Fd c) {
  const std::size_t n = std::stoul(text_);
  const bool close_after = text_.find(",close") != std::string::npos;
  std::string in;
  std::vector<std::string> batch;
  char buf[4096];
  for (;;) {
    pollfd p[2] = {{c.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(p, 2, 5000) <= 0 || p[1].revents != 0) return;
    const ssize_t got = ::recv(c.get(), buf, sizeof buf, 0);
    if (got <= 0) return;
    in.append(buf, static_cast<std::size_t>(got));
    for (std::size_t nl; (nl = in.find('\n')) != std::string::npos; in.erase(0, nl + 1)) {
      batch.push_back(in.substr(0, nl));
    }
    if (batch.size() < n) continue;
    std::string out;
    for (const auto& line : batch) out += line + "\n";
    {
      std::lock_guard lock(mu_);
      lines_.insert(lines_.end(), batch.begin(), batch.end());
    }
    batch.clear();
    ::send(c.get(), out.data(), out.size(), MSG_NOSIGNAL);
    if (close_after) return;
  }
}

std::vector<std::string> FakeServer::lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

void FakeServer::run() {
  for (;;) {
    pollfd p[2] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(p, 2, 10000) <= 0) continue;
    if (p[1].revents) return;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    tcpd::Fd c(::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
    if (!c) continue;
    {
      std::lock_guard lock(mu_);
      peers_.insert(peer.sin_addr.s_addr);
    }
    ++accepted_;
    if (kind_ == Kind::stall) {
      held_.push_back(std::move(c));
      continue;
    }
    if (kind_ == Kind::batch) {
      senders_.emplace_back(
          [this, fd = std::move(c)]() mutable { answer_in_batches(std::move(fd)); });
      continue;
    }
    // Read the request (bounded), then answer as the kind says.
    pollfd r{c.get(), POLLIN, 0};
    char buf[4096];
    if (::poll(&r, 1, 2000) > 0) [[maybe_unused]]
      auto n = ::recv(c.get(), buf, sizeof buf, 0);
    if (kind_ == Kind::trickle || kind_ == Kind::flood) {
      senders_.emplace_back(
          [this, fd = std::move(c)]() mutable { send_until_gone(std::move(fd)); });
      continue;
    }
    if (kind_ == Kind::reset) {
      linger l{1, 0};
      ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    } else {
      ::send(c.get(), text_.data(), text_.size(), MSG_NOSIGNAL);
      ::shutdown(c.get(), SHUT_WR);
      if (kind_ == Kind::half_close) held_.push_back(std::move(c));
    }
  }
}

std::size_t FakeServer::distinct_peers() const {
  std::lock_guard lock(mu_);
  return peers_.size();
}

int unused_port() {
  tcpd::Fd fd = tcpd::listen_tcp("127.0.0.1", 0, 1);
  return tcpd::local_port(fd.get());
}

}  // namespace testing_support
