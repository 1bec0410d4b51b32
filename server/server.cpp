#include "server.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include "log.hpp"
#include "poller.hpp"
#include "session.hpp"
#include "socket.hpp"
#include "work_queue.hpp"
#include "worker_pool.hpp"

namespace tcpd {
namespace {

Fd make_eventfd() {
  Fd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!fd) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

// Held open so that, when accept() fails with EMFILE, closing it frees one descriptor to accept
// and turn away the waiting connection instead of leaving it in the backlog to be retried.
Fd open_spare() {
  return Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

}  // namespace

struct Server::Impl {
  explicit Impl(ServerConfig cfg)
      : config(std::move(cfg)),
        listener(listen_tcp(config.bind, config.port, SOMAXCONN)),
        waker(config.workers),
        queue(config.queue, [this] { on_backlog(); }),
        stop_fd(make_eventfd()),
        env{config,        stats,    queue.backlog_fd(), queue.backlog_flag(),
            stop_fd.get(), draining, drain_deadline,     waker},
        poller(queue, env, waker),
        spare(open_spare()) {
    // Accepted sockets inherit SO_RCVTIMEO from the listener: the blocking idle wait's bound
    // (the idle timeout) then costs no setsockopt per connection.
    inherited_rcvtimeo = set_io_timeout(listener.get(), SO_RCVTIMEO, config.idle_timeout);
  }

  void run();
  void accept_loop();
  void work(unsigned index);
  void reject(Fd fd, Outcome why);
  void shed();
  void drain();
  // Someone needs a worker: interrupt workers blocked in recv() on idle sessions, and have
  // the poller repeat that until they have let go.
  void on_backlog() {
    if (waker.kick_waiting(1) > 0) poller.nudge();
  }

  ServerConfig config;
  Fd listener;
  Stats stats;
  Waker waker;
  WorkQueue<Session> queue;
  Fd stop_fd;
  std::atomic<bool> draining{false};
  std::atomic<Clock::rep> drain_deadline{0};
  std::atomic<bool> stopping{false};
  SessionEnv env;
  Poller poller;
  Fd spare;
  bool inherited_rcvtimeo = false;
  WorkerPool pool;
  std::atomic<unsigned> live_workers{0};
  Clock::time_point last_fd_warning{};
};

Server::Server(ServerConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Server::~Server() = default;

uint16_t Server::port() const {
  return local_port(impl_->listener.get());
}
std::string Server::address() const {
  return local_address(impl_->listener.get());
}
StatsSnapshot Server::stats() const {
  return impl_->stats.snapshot();
}
std::size_t Server::parked() const {
  return impl_->poller.parked();
}
void Server::run() {
  impl_->run();
}

void Server::stop() {
  if (impl_->stopping.exchange(true)) return;
  // Wakes the acceptor blocked in accept(): on Linux, shutting down a listening socket makes a
  // pending accept() fail with EINVAL, and every later one too.
  ::shutdown(impl_->listener.get(), SHUT_RD);
}

void Server::Impl::run() {
  poller.start();
  live_workers.store(config.workers);
  pool.start(config.workers, [this](unsigned i) { work(i); });
  try {
    accept_loop();
  } catch (...) {
    drain();  // a fatal accept error still ends with every thread joined
    throw;
  }
  drain();
}

void Server::Impl::accept_loop() {
  for (;;) {
    int raw = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (raw < 0) {
      const int err = errno;
      if (stopping.load()) return;
      switch (err) {
        case EINTR:
        case EAGAIN:        // the listener's SO_RCVTIMEO (set for the sockets it hands out) ran out
        case ECONNABORTED:  // the client gave up before we got to it
        case EPROTO:
        case EPERM:  // a firewall rule refused it
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH: continue;
        case EMFILE:
        case ENFILE: shed(); continue;
        case ENOBUFS:
        case ENOMEM:
          // Kernel memory pressure: back off briefly rather than spin.
          std::this_thread::sleep_for(Millis{10});
          continue;
        default:
          throw std::system_error(err, std::generic_category(),
                                  "accept on " + local_address(listener.get()));
      }
    }
    stats.accepted();
    const auto now = Clock::now();
    Session s(Fd(raw), config.max_message, now + config.idle_timeout);
    s.recv_timeout_set = inherited_rcvtimeo;
    if (!queue.try_push(s)) reject(std::move(s.fd), Outcome::busy);
  }
}

void Server::Impl::reject(Fd fd, Outcome why) {
  // The socket is fresh: its send buffer is empty, so this never blocks.
  send_now(fd.get(), kErrBusy);
  stats.ended(why);
  log_outcome(fd.get(), why, 0, config.quiet);
  if (why == Outcome::busy) poller.linger(std::move(fd));
}

void Server::Impl::shed() {
  const auto now = Clock::now();
  if (now - last_fd_warning > std::chrono::seconds(1)) {
    last_fd_warning = now;
    log_line("out of file descriptors ({}); turning new connections away with ERR busy",
             std::strerror(errno));
  }
  spare.reset();
  int raw = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (raw >= 0) {
    stats.accepted();
    reject(Fd(raw), Outcome::shed);
  }
  spare = open_spare();
  if (raw < 0 || !spare) {
    // Nothing could be freed (ENFILE is system-wide, or another thread took the slot): wait a
    // little for descriptors to come back instead of spinning on accept().
    std::this_thread::sleep_for(Millis{5});
  }
}

void Server::Impl::work(unsigned index) {
  waker.attach(index);
  std::string scratch;
  while (auto item = queue.pop()) {
    Session& s = *item;
    Verdict v = serve(s, env, scratch, index);
    switch (v.kind) {
      case Verdict::Kind::requeue: queue.push(s); break;
      case Verdict::Kind::park:
        if (auto back = poller.park(std::move(s))) finish(*back, drained(*back), env);
        break;
      case Verdict::Kind::close:
        finish(s, v.outcome, env);
        if (v.linger) poller.linger(std::move(s.fd));
        break;
    }
    if (scratch.capacity() > std::size_t{64} * 1024) std::string().swap(scratch);
  }
  live_workers.fetch_sub(1);
}

void Server::Impl::drain() {
  drain_deadline.store((Clock::now() + config.drain_timeout).time_since_epoch().count(),
                       std::memory_order_relaxed);
  draining.store(true, std::memory_order_release);
  // Wakes workers blocked in a request read or write (stop_fd) and those waiting on an idle
  // session (the backlog fd), so that each re-cuts its wait to the drain deadline.
  uint64_t one = 1;
  [[maybe_unused]] auto rc = ::write(stop_fd.get(), &one, sizeof one);
  queue.wake_for_good();
  // The poller first: it hands back sessions with input waiting while workers still pop.
  poller.stop();
  queue.close();
  // The poller no longer repeats lost kicks, so do it here until every worker has left.
  while (live_workers.load() > 0) {
    waker.kick_waiting();
    std::this_thread::sleep_for(Millis{1});
  }
  pool.join();
}

}  // namespace tcpd
