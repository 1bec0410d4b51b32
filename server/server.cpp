#include "server.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <new>
#include <system_error>
#include <thread>

#include "eventfd.hpp"
#include "log.hpp"
#include "poller.hpp"
#include "session.hpp"
#include "socket.hpp"
#include "work_queue.hpp"
#include "worker_pool.hpp"

namespace tcpd {
namespace {

// Held open so that, when accept() fails with EMFILE, closing it frees one descriptor to accept
// the waiting connection instead of leaving it in the backlog to be retried.
Fd open_spare() {
  return Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

// The listener is non-blocking: the acceptor sleeps in poll() on it and on its wake-up eventfd,
// so that stopping never needs shutdown() on the listening socket. That would reset every
// connection still in the kernel's accept queue, and break a socket a parent still holds.
// An inherited listener (socket activation) is used as it is; its owner keeps a copy, so tcpd
// must never shut it down, only close its own descriptor.
Fd make_listener(const ServerConfig& cfg) {
  Fd fd = cfg.listen_fd >= 0 ? Fd(cfg.listen_fd)
                             : listen_tcp(cfg.bind, cfg.port, SOMAXCONN, cfg.reuseport);
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    throw std::system_error(errno, std::generic_category(), "fcntl on the listener");
  }
  return fd;
}

enum class Accept { accepted, empty, retry, out_of_fds };

struct Accepted {
  Accept status;
  Fd fd;
  PeerAddress peer;
};

}  // namespace

struct Server::Impl {
  explicit Impl(ServerConfig cfg)
      : config(std::move(cfg)),
        listener(make_listener(config)),
        address(local_address(listener.get())),
        port(local_port(listener.get())),
        accept_wake(make_eventfd()),
        stats(config.workers),
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
  ~Impl() { stop_threads(); }

  void start();
  void run();
  void accept_loop();
  Accepted accept_next();
  void wait_for_connections();
  Session new_session(Accepted& a);
  void admit(Accepted a);
  void shed();
  void work(unsigned index);
  void serve_one(Session& s, std::string& scratch, unsigned index);
  void drain();
  void accept_backlog();
  void stop_threads();
  // Someone needs a worker: interrupt workers blocked in recv() on idle sessions, and have
  // the poller repeat that until they have let go.
  void on_backlog() {
    if (waker.kick_waiting(1) > 0) poller.nudge();
  }

  ServerConfig config;
  Fd listener;
  std::string address;
  uint16_t port;
  Fd accept_wake;  // raised by stop(): the acceptor leaves poll()
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
  bool started = false;
  WorkerPool pool;
  std::atomic<unsigned> live_workers{0};
  Clock::time_point last_fd_warning{};
};

Server::Server(ServerConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Server::~Server() = default;

uint16_t Server::port() const {
  return impl_->port;
}
std::string Server::address() const {
  return impl_->address;
}
StatsSnapshot Server::stats() const {
  return impl_->stats.snapshot();
}
std::size_t Server::parked() const {
  return impl_->poller.parked();
}
Gauges Server::gauges() const {
  Gauges g;
  g.parked = impl_->poller.parked();
  g.queue_depth = impl_->queue.size();
  g.queue_capacity = impl_->config.queue;
  g.workers = impl_->config.workers;
  const std::size_t idle = impl_->queue.idle_workers();
  g.workers_busy = impl_->started && idle < g.workers ? g.workers - idle : 0;
  g.log_dropped = log_dropped();
  return g;
}
void Server::start() {
  impl_->start();
}
void Server::run() {
  impl_->run();
}

void Server::stop() {
  if (impl_->stopping.exchange(true)) return;
  raise_eventfd(impl_->accept_wake.get());
}

void Server::Impl::start() {
  if (started) return;
  poller.start();
  live_workers.store(config.workers);
  try {
    // If the pool cannot be completed, closing the queue makes the workers already running
    // return, so that the error reaches main instead of a join that waits for ever.
    pool.start(
        config.workers, [this](unsigned i) { work(i); }, [this] { queue.close(); });
  } catch (...) {
    poller.stop();
    throw;
  }
  started = true;
}

void Server::Impl::run() {
  start();
  try {
    accept_loop();
  } catch (...) {
    drain();  // a fatal accept error still ends with every thread joined
    throw;
  }
  drain();
}

Accepted Server::Impl::accept_next() {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int raw = ::accept4(listener.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
  if (raw >= 0) {
    Accepted a{Accept::accepted, Fd(raw), {}};
    a.peer.set(reinterpret_cast<sockaddr*>(&ss), len);
    return a;
  }
  const int err = errno;
  switch (err) {
    case EAGAIN: return {Accept::empty, {}, {}};
    case EINTR:
    case ECONNABORTED:  // the client gave up before we got to it
    case EPROTO:
    case EPERM:  // a firewall rule refused it
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH: return {Accept::retry, {}, {}};
    case EMFILE:
    case ENFILE: return {Accept::out_of_fds, {}, {}};
    case ENOBUFS:
    case ENOMEM:
      // Kernel memory pressure: back off briefly rather than spin.
      std::this_thread::sleep_for(Millis{10});
      return {Accept::retry, {}, {}};
    default: throw std::system_error(err, std::generic_category(), "accept on " + address);
  }
}

void Server::Impl::wait_for_connections() {
  std::array<pollfd, 2> p{{{listener.get(), POLLIN, 0}, {accept_wake.get(), POLLIN, 0}}};
  ::poll(p.data(), p.size(), -1);  // EINTR or an error: the caller looks again
}

// Accepts until stop(). accept4() first and poll() only when nothing waits: under load a
// connection costs one accept4(), as with a blocking accept.
void Server::Impl::accept_loop() {
  while (!stopping.load(std::memory_order_relaxed)) {
    // After a shortage, the reserve descriptor comes back before any connection takes the
    // first free one: without it, connections waiting in the backlog are neither served nor
    // turned away until something else closes.
    if (!spare) spare = open_spare();
    Accepted a = accept_next();
    switch (a.status) {
      case Accept::accepted: admit(std::move(a)); break;
      case Accept::empty: wait_for_connections(); break;
      case Accept::out_of_fds: shed(); break;
      case Accept::retry: break;
    }
  }
}

Session Server::Impl::new_session(Accepted& a) {
  const auto now = Clock::now();
  Session s(std::move(a.fd), config.max_message, now, config.idle_timeout);
  s.peer = a.peer;
  s.queued = now;
  s.recv_timeout_set = inherited_rcvtimeo;
  return s;
}

void Server::Impl::admit(Accepted a) {
  stats.accepted();
  if (log_enabled(LogLevel::debug)) log_at(LogLevel::debug, "{} accepted", a.peer.str());
  try {
    Session s = new_session(a);
    if (queue.try_push(s)) return;
    // The queue bounds work waiting for a worker, not connections waiting for their first
    // byte: a burst of silent connections is parked, and its first bytes go through the bound.
    if (auto back = poller.park_new(std::move(s))) poller.reject(*back, Outcome::busy);
  } catch (const std::bad_alloc&) {
    stats.ended(Outcome::error);  // the descriptor closes as it unwinds
  }
}

// accept() failed with EMFILE/ENFILE. The spare descriptor, closed for a moment, lets one
// waiting connection in: if the spare can be opened again afterwards, descriptors are back and
// the connection is served; if not, it gets ERR busy and a graceful close (which keeps its
// descriptor until the client leaves, so the spare returns only then).
void Server::Impl::shed() {
  const auto now = Clock::now();
  if (now - last_fd_warning > std::chrono::seconds(1)) {
    last_fd_warning = now;
    log_at(LogLevel::warn, "out of file descriptors; turning new connections away with ERR busy");
  }
  if (!spare) spare = open_spare();
  if (!spare) {
    // Nothing to free (ENFILE is system-wide, or a lingering reject holds the slot): wait a
    // little for descriptors to come back instead of spinning on accept().
    std::this_thread::sleep_for(Millis{5});
    return;
  }
  spare.reset();
  Accepted a = accept_next();
  spare = open_spare();
  if (a.status != Accept::accepted) return;
  if (spare) {
    admit(std::move(a));
    return;
  }
  stats.accepted();
  Session s = new_session(a);
  poller.reject(s, Outcome::shed);
}

void Server::Impl::serve_one(Session& s, std::string& scratch, unsigned index) {
  Verdict v = serve(s, env, scratch, index);
  switch (v.kind) {
    case Verdict::Kind::requeue:
      // Waiting in the queue, a session with nothing pending holds no buffer.
      s.framer.release_if_empty();
      s.queued = Clock::now();
      queue.push(s);
      break;
    case Verdict::Kind::park:
      // Refused once the drain has stopped the poller: the workers finish it instead (what
      // has arrived is served, a connection that has sent nothing gets its grace).
      if (auto back = poller.park(std::move(s))) {
        back->queued = Clock::now();
        queue.push(*back);
      }
      break;
    case Verdict::Kind::close:
      finish(s, v.outcome, env);
      if (v.linger) poller.linger(std::move(s.fd));
      break;
  }
}

void Server::Impl::work(unsigned index) {
  waker.attach(index);
  stats.bind_thread(index);
  std::string scratch;
  while (auto item = queue.pop()) {
    stats.queue_waited(Clock::now() - item->queued);
    try {
      serve_one(*item, scratch, index);
    } catch (const std::exception& e) {
      // Out of memory (or any other failure) ends this connection, never the process.
      if (item->fd) {
        log_at(LogLevel::error, "{}: {}; closing the connection", item->peer.str(), e.what());
        finish(*item, Outcome::error, env);
      } else {
        stats.ended(Outcome::error);  // lost while being handed on
      }
      std::string().swap(scratch);
    }
    if (scratch.capacity() > 2 * kReplyBuffer) std::string().swap(scratch);
  }
  live_workers.fetch_sub(1);
}

// Connections that completed the handshake before the drain are served, not reset: accept what
// the kernel holds (bounded by the drain deadline), then close the listener, never shut it down.
void Server::Impl::accept_backlog() {
  const Clock::time_point deadline{Clock::duration{drain_deadline.load()}};
  while (listener && Clock::now() < deadline) {
    Accepted a = accept_next();
    if (a.status == Accept::empty || a.status == Accept::out_of_fds) break;
    if (a.status != Accept::accepted) continue;
    stats.accepted();
    Session s = new_session(a);
    queue.push(s);  // always taken: the drain serves it, bounded by the listen backlog
  }
  listener.reset();
}

void Server::Impl::drain() {
  drain_deadline.store((Clock::now() + config.drain_timeout).time_since_epoch().count(),
                       std::memory_order_relaxed);
  draining.store(true, std::memory_order_release);
  // Wakes workers blocked in a request read or write (stop_fd) and those waiting on an idle
  // session (the backlog fd), so that each re-cuts its wait to the drain deadline.
  raise_eventfd(stop_fd.get());
  queue.wake_for_good();
  try {
    accept_backlog();
  } catch (const std::exception& e) {
    log_at(LogLevel::error, "drain: {}", e.what());
    listener.reset();
  }
  stop_threads();
}

void Server::Impl::stop_threads() {
  // The poller first: it hands back sessions with input waiting while workers still pop.
  poller.stop();
  queue.close();
  // The poller no longer repeats lost kicks, so do it here until every worker has left.
  while (started && live_workers.load() > 0) {
    waker.kick_waiting();
    std::this_thread::sleep_for(Millis{1});
  }
  pool.join();
}

}  // namespace tcpd
