#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <system_error>

#include "eventfd.hpp"
#include "log.hpp"
#include "server_impl.hpp"

namespace tcpd {

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
      // Kernel memory pressure: back off briefly rather than spin (stop() ends the pause).
      wait_readable(accept_wake.get(), Clock::now() + kNoMemoryPause);
      return {Accept::retry, {}, {}};
    default: throw std::system_error(err, std::generic_category(), "accept on " + address);
  }
}

// Sleeps until a connection waits in the listen queue, stop() is called, or a new connection
// parked in waiting_new sends its first bytes (it then goes through the queue's bound).
void Server::Impl::wait_for_connections() {
  Parked::Woken w = waiting_new.wait(-1);
  if (w.session) queue_or_reject(*w.session);
}

// Without sleeping: the new connections whose first bytes (or FIN) have come. The listener,
// readable while connections wait in the backlog, is skipped; the bound keeps one call short.
void Server::Impl::new_connections_ready() {
  for (std::size_t i = 0; i < kNewConnectionsPerLook; ++i) {
    Parked::Woken w = waiting_new.wait(0);
    if (w.timed_out) return;
    if (w.session) queue_or_reject(*w.session);
  }
}

// Accepts until stop(). accept4() first and poll() only when nothing waits: under load a
// connection costs one accept4(), as with a blocking accept. Workers are woken once the backlog
// is empty or kAcceptBatch connections are queued, not per connection.
void Server::Impl::accept_loop() {
  const std::size_t batch = std::min(kAcceptBatch, config.queue);
  std::size_t held = 0;  // connections queued since the last wake-up (WorkQueue::try_push_held)
  while (!stopping.load(std::memory_order_relaxed)) {
    Accepted a = may_accept() ? accept_next() : Accepted{Accept::out_of_fds, {}, {}};
    const Accept status = a.status;
    if (status == Accept::accepted) {
      admit(std::move(a), true);
      if (++held < batch) continue;
    }
    if (held > 0) {
      queue.wake_held();  // before sleeping, shedding, or the next batch
      held = 0;
    }
    switch (status) {
      case Accept::accepted: break;
      case Accept::empty: wait_for_connections(); break;
      case Accept::out_of_fds: shed(); break;
      case Accept::retry: break;
    }
  }
  if (held > 0) queue.wake_held();
}

// After a shortage the spare comes back before any connection may take a descriptor. Were
// the first one freed (a lingering reject closing) to go to accept(), the connection would hold
// it, up to the idle timeout for a silent one, and those behind it in the backlog would be
// neither served nor turned away meanwhile (for up to the idle timeout). So a failed reopen means
// no accept(): accepting anyway let a descriptor freed between the two calls go to the connection.
// Without /dev/null (a bare chroot) there is no spare to wait for.
bool Server::Impl::may_accept() {
  if (spare) return true;
  spare = open_spare();
  const int err = errno;  // moving an Fd into an empty one closes nothing
  return spare || (err != EMFILE && err != ENFILE);
}

Session Server::Impl::new_session(Accepted& a) {
  const auto now = Clock::now();
  Session s(std::move(a.fd), config.max_message, now, config.idle_timeout);
  s.peer = a.peer;
  s.queued = now;
  return s;
}

bool Server::Impl::screen(Session& s) {
  if (config.proxy_protocol) {
    if (!admission.trusted_proxy(s.peer)) {
      s.refusal = "may not send a PROXY header (--proxy-from)";
      finish(s, Outcome::denied, env);
      return false;
    }
    s.awaiting_proxy = true;
    s.idle_deadline = s.accepted + config.proxy_timeout;
    return true;
  }
  switch (admission.admit(s)) {
    case Admission::Verdict::ok: return true;
    case Admission::Verdict::denied:
      s.refusal = "--allow/--deny";
      finish(s, Outcome::denied, env);
      return false;
    case Admission::Verdict::limited: parked.reject(s, Outcome::limited); return false;
  }
  return true;
}

void Server::Impl::admit(Accepted a, bool batch) {
  stats.accepted();
  if (log_enabled(LogLevel::debug)) log_at(LogLevel::debug, "{} accepted", a.peer.str());
  try {
    Session s = new_session(a);
    if (!screen(s)) return;
    if (batch ? queue.try_push_held(s) : queue.try_push(s)) return;
    // The queue bounds work waiting for a worker, not connections waiting for their first
    // byte: a burst of silent connections waits here, and its first bytes meet the bound.
    if (waiting_new.park(s) != Parked::Park::parked) parked.reject(s, Outcome::busy);
  } catch (const std::bad_alloc&) {
    stats.ended(Outcome::error);  // the descriptor closes as it unwinds
  }
}

void Server::Impl::queue_or_reject(Session& s) {
  s.queued = Clock::now();
  if (queue.try_push(s)) return;
  // A client that left without a request (its FIN or RST is what woke us) is not turned away:
  // 10,000 silent clients closing at once would otherwise count as 10,000 ERR busy.
  switch (peek_input(s.fd.get())) {
    case Pending::closed: end(s, Outcome::no_request, false); break;
    case Pending::error: end(s, Outcome::reset, false); break;
    default: parked.reject(s, Outcome::busy); break;
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
  if (!spare) {
    // Nothing to free (may_accept() has just failed to reopen it: ENFILE is system-wide, or a
    // lingering reject holds the slot): wait a little for descriptors to come back instead of
    // spinning on accept(). stop() raising accept_wake ends the pause.
    wait_readable(accept_wake.get(), Clock::now() + kNoSparePause);
    new_connections_ready();
    return;
  }
  // Out of descriptors the acceptor may not sleep in wait_for_connections() for a while (the
  // backlog keeps the listener readable), so it looks at the waiting new connections here too:
  // their clients leaving is what gives descriptors back.
  new_connections_ready();
  spare.reset();
  Accepted a = accept_next();
  spare = open_spare();
  if (a.status == Accept::empty) {
    // accept() takes a descriptor before it looks at the backlog: at the limit it fails with
    // EMFILE when nobody waits at all. Accepting again would spin on that; sleep until
    // someone connects.
    wait_for_connections();
    return;
  }
  if (a.status != Accept::accepted) return;
  if (spare) {
    admit(std::move(a));
    return;
  }
  stats.accepted();
  Session s = new_session(a);
  parked.reject(s, Outcome::shed);
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
    if (!screen(s)) continue;
    hand_on(s);  // always taken: the drain serves it, bounded by the listen backlog
  }
  listener.reset();
}

}  // namespace tcpd
