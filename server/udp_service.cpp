#include "udp_service.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "eventfd.hpp"
#include "log.hpp"
#include "socket.hpp"
#include "tuning.hpp"
#include "udp_batch.hpp"

namespace tcpd {
namespace {

std::system_error sys_error(int err, const std::string& what) {
  return {err, std::generic_category(), what};
}

bool wildcard(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6) {
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr);
  }
  return reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

// What every UDP socket of tcpd's needs: the kernel's drop count with each datagram, where a
// datagram was sent (a wildcard socket's reply must leave from it), and a bound on a blocked send.
void configure(int fd, int family, bool any_address, Millis send_timeout) {
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
  if (any_address) {
    // On a dual-stack socket IPV6_PKTINFO covers IPv4 too (as a mapped address).
    const bool ok = family == AF_INET6
                        ? ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) == 0
                        : ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) == 0;
    if (!ok) throw sys_error(errno, "cannot ask for the destination address of UDP datagrams");
  }
  set_io_timeout(fd, SO_SNDTIMEO, send_timeout);
}

Fd open_udp(const sockaddr_storage& ss, socklen_t len, bool v6only, bool reuseport,
            const std::string& name) {
  Fd fd(::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) throw sys_error(errno, "cannot create a UDP socket for " + name);
  int one = 1;
  if (reuseport && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    throw sys_error(errno, "cannot set SO_REUSEPORT on UDP " + name);
  }
  if (ss.ss_family == AF_INET6) {
    int v = v6only ? 1 : 0;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v);
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    throw sys_error(errno, "cannot bind UDP to " + name);
  }
  return fd;
}

// The address a socket is bound to, and whether IPv6-only.
struct Bound {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  bool v6only = false;
};

Bound bound_address(int fd) {
  Bound b;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&b.addr), &b.len) != 0) {
    throw sys_error(errno, "getsockname");
  }
  if (b.addr.ss_family == AF_INET6) {
    int v = 0;
    socklen_t l = sizeof v;
    ::getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &l);
    b.v6only = v != 0;
  }
  return b;
}

}  // namespace

unsigned udp_threads(const ServerConfig& cfg) {
  if (cfg.udp_workers > 0) return cfg.udp_workers;
  // A UDP thread never waits for a client, so past one per core more threads only add
  // wake-ups; --delay-ms (simulated work that sleeps) is what wants them all.
  if (cfg.delay.count() > 0) return cfg.workers;
  cpu_set_t set;
  CPU_ZERO(&set);
  const unsigned cpus =
      ::sched_getaffinity(0, sizeof set, &set) == 0 ? static_cast<unsigned>(CPU_COUNT(&set)) : 1;
  return std::clamp(cpus, 1U, cfg.workers);
}

UdpService::UdpService(const ServerConfig& cfg, int tcp_listener)
    : cfg_(cfg),
      threads_(udp_threads(cfg)),
      slots_(std::make_unique<UdpSlot[]>(threads_)),
      wake_(make_eventfd()) {
  if (cfg.udp_source_rate > 0) {
    limiter_.emplace(static_cast<double>(cfg.udp_source_rate), kUdpSourcesTracked);
  }
  if (cfg.udp_fd >= 0) {
    auto s = std::make_unique<Socket>();
    s->fd = Fd(cfg.udp_fd);
    s->inherited = true;
    const Bound b = bound_address(s->fd.get());
    configure(s->fd.get(), b.addr.ss_family, wildcard(b.addr), cfg.io_timeout);
    address_ = local_address(s->fd.get());
    sockets_.push_back(std::move(s));
    return;
  }
  const Bound b = bound_address(tcp_listener);
  address_ = local_address(tcp_listener);
  // Several sockets of one SO_REUSEPORT group; with --reuseport other processes may join it.
  const bool group = !cfg.udp_shared_socket;
  const unsigned count = group ? threads_ : 1;
  for (unsigned i = 0; i < count; ++i) {
    auto s = std::make_unique<Socket>();
    s->fd = open_udp(b.addr, b.len, b.v6only, group || cfg.reuseport, address_);
    configure(s->fd.get(), b.addr.ss_family, wildcard(b.addr), cfg.io_timeout);
    sockets_.push_back(std::move(s));
  }
}

UdpService::~UdpService() {
  begin_drain(Clock::now());
  join();
}

void UdpService::start() {
  pool_.start(
      threads_, [this](unsigned i) { work(i); }, [this] { begin_drain(Clock::now()); });
}

void UdpService::begin_drain(Clock::time_point deadline) {
  deadline_.store(deadline.time_since_epoch().count(), std::memory_order_relaxed);
  if (draining_.exchange(true, std::memory_order_acq_rel)) return;
  raise_eventfd(wake_.get());
  for (auto& s : sockets_) {
    if (s->inherited) continue;  // its receive timeout ends the wait: see work()
    // Wakes every thread blocked in recvmmsg() on it: a shut-down socket returns at once. (An
    // unconnected socket's shutdown() fails with ENOTCONN after doing just that.)
    ::shutdown(s->fd.get(), SHUT_RD);
  }
}

void UdpService::join() {
  pool_.join();
}

// Sleeps --delay-ms, cut short by the drain deadline.
void UdpService::pause(Clock::time_point until) const {
  for (;;) {
    const bool draining = draining_.load(std::memory_order_acquire);
    if (draining) until = std::min(until, Clock::time_point(Clock::duration(deadline_.load())));
    pollfd p{draining ? -1 : wake_.get(), POLLIN, 0};
    if (::poll(&p, 1, poll_timeout_ms(until)) == 0 || Clock::now() >= until) return;
  }
}

void UdpService::work(unsigned index) {
  Socket& sock = *sockets_[sockets_.size() == 1 ? 0 : index];
  UdpSlot& slot = slots_[index];
  if (sock.inherited) {
    // systemd keeps a copy of an inherited socket to pass to the next instance, so it is never
    // shut down; a receive timeout lets its threads see the drain instead.
    set_io_timeout(sock.fd.get(), SO_RCVTIMEO, kUdpInheritedPoll);
  }
  UdpBatch batch(cfg_.udp_batch, std::min<std::size_t>(cfg_.max_message, kUdpMaxPayload));
  bool warned = false;
  while (!draining_.load(std::memory_order_acquire)) {
    const int n = batch.receive(sock.fd.get());
    if (n > 0) {
      answer(batch, n, sock, slot);
      continue;
    }
    const int err = errno;
    if (n == 0 || err == EINTR || err == EAGAIN) continue;
    if (!warned) {
      log_at(LogLevel::warn, "udp: receive on {}: {}", address_, std::strerror(err));
      warned = true;
    }
    pause(Clock::now() + kNoMemoryPause);  // ENOMEM and the like: do not spin
  }
}

bool UdpService::allowed(const sockaddr* source) const {
  if (!cfg_.allow && !cfg_.deny) return true;
  const IpKey k = ip_key(source);
  if (cfg_.deny && cfg_.deny->contains(k)) return false;
  return !cfg_.allow || cfg_.allow->empty() || cfg_.allow->contains(k);
}

void UdpService::answer(UdpBatch& batch, int n, Socket& sock, UdpSlot& slot) {
  static constexpr std::string_view kTooLong = "ERR too long";
  const auto started = Clock::now();
  if (auto drops = batch.kernel_drops()) {
    uint32_t seen = sock.kernel_drops.load(std::memory_order_relaxed);
    // The counter only grows; with a shared socket another thread may have stored a later value.
    while (*drops > seen && !sock.kernel_drops.compare_exchange_weak(seen, *drops)) {
    }
  }
  for (int k = 0; k < n; ++k) {
    const auto i = static_cast<std::size_t>(k);
    if (!batch.is_datagram(i)) continue;
    slot.add(slot.read, 1);
    slot.add(slot.bytes_in, batch.data(i).size());
    if (reflection_port(batch.source_port(i))) {
      slot.drop(UdpDrop::reflection_port);
    } else if (!allowed(batch.source(i))) {
      slot.drop(UdpDrop::denied);
    } else if (limiter_ && !limiter_->allow(source_key(batch.source(i)), started)) {
      slot.drop(UdpDrop::rate_limited);
    } else if (batch.truncated(i) || batch.data(i).size() > cfg_.max_message) {
      slot.drop(UdpDrop::too_long);
      batch.add_reply(i, kTooLong, false);
    } else {
      if (cfg_.delay.count() > 0) pause(Clock::now() + cfg_.delay);
      batch.add_reply(i, cfg_.mode == Mode::echo ? batch.data(i) : std::string_view(cfg_.reply),
                      true);
    }
  }
  const UdpBatch::Tally t = batch.send_replies(sock.fd.get());
  slot.add(slot.sent, t.sent);
  slot.add(slot.bytes_out, t.bytes);
  if (t.send_errors > 0) slot.drop(UdpDrop::send_error, t.send_errors);
  if (t.sent > 0) slot.request_duration.observe(Clock::now() - started, t.sent);
}

UdpSnapshot UdpService::snapshot() const {
  UdpSnapshot s;
  for (unsigned i = 0; i < threads_; ++i) {
    const UdpSlot& slot = slots_[i];
    s.received += slot.read.load(std::memory_order_relaxed);
    s.sent += slot.sent.load(std::memory_order_relaxed);
    for (std::size_t d = 0; d < s.dropped.size(); ++d) {
      s.dropped[d] += slot.dropped[d].load(std::memory_order_relaxed);
    }
    s.bytes_in += slot.bytes_in.load(std::memory_order_relaxed);
    s.bytes_out += slot.bytes_out.load(std::memory_order_relaxed);
    slot.request_duration.add_to(s.request_duration);
  }
  uint64_t kernel = 0;
  for (const auto& sock : sockets_) kernel += sock->kernel_drops.load(std::memory_order_relaxed);
  s.dropped[static_cast<std::size_t>(UdpDrop::kernel_buffer)] += kernel;
  s.received += kernel;
  return s;
}

std::size_t UdpService::sources_tracked() const {
  return limiter_ ? limiter_->tracked() : 0;
}

}  // namespace tcpd
