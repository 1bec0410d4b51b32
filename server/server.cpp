#include "server.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <new>
#include <span>
#include <system_error>
#include <vector>

#include "eventfd.hpp"
#include "log.hpp"
#include "parked.hpp"
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

// What a wait() on the parked sets may return besides a session.
constexpr uint64_t kQueueWake = Parked::kFirstTag;       // workers' set: the queue needs the leader
constexpr uint64_t kListener = Parked::kFirstTag + 1;    // acceptor's set
constexpr uint64_t kAcceptWake = Parked::kFirstTag + 2;  // acceptor's set: stop()
// Connections the acceptor takes from its backlog before it wakes a worker for them (fewer
// wake-ups is what pays; the first connection of a full batch waits for 63 more accept4() calls,
// a few hundred microseconds by estimate; docs/DESIGN.md, "The acceptor's batch"). Never more
// than the queue holds: past that, held connections would wait unwoken while the rest went to
// waiting_new.
constexpr std::size_t kAcceptBatch = 64;
// How long after the drain deadline the drain waits for its workers to be done: every wait in a
// session ends by the deadline, so this is only their last steps on a loaded machine.
constexpr Millis kDrainGrace{1000};

struct Server::Impl {
  explicit Impl(ServerConfig cfg)
      : config(std::move(cfg)),
        listener(make_listener(config)),
        address(local_address(listener.get())),
        port(local_port(listener.get())),
        accept_wake(make_eventfd()),
        stats(config.workers),
        queue(config.queue),
        stop_fd(make_eventfd()),
        env{config, stats, stop_fd.get(), draining, drain_deadline},
        parked(env, true, true),
        waiting_new(env, false, false),
        spare(open_spare()),
        busy(std::make_unique<Busy[]>(config.workers)) {
    parked.watch(queue.wake_fd(), kQueueWake, true);
    waiting_new.watch(listener.get(), kListener, false);
    waiting_new.watch(accept_wake.get(), kAcceptWake, false);
  }
  ~Impl() { stop_threads(); }

  void start();
  void run();
  void accept_loop();
  bool may_accept();
  Accepted accept_next();
  void wait_for_connections();
  void new_connections_ready();
  Session new_session(Accepted& a);
  // batch: the wake-up for it waits for the acceptor's WorkQueue::wake_held().
  void admit(Accepted a, bool batch = false);
  void queue_or_reject(Session& s);
  // Hands a session read already (or with more input waiting) to the next free worker, outside
  // the queue's bound.
  void hand_on(Session& s);
  void shed();
  void work(unsigned index);
  std::optional<Session> next_session(bool& queue_first, Scratch& scratch);
  std::optional<Session> take_ready(bool& queue_first);
  std::optional<Session> from_queue();
  void take_ready_batch(std::vector<Session>& batch);
  void serve_batch(std::vector<Session>& batch, Scratch& scratch);
  template <typename Step>
  void guarded(Session& s, Scratch& scratch, Step step);
  // `in`: the receive buffer lent to `s`, kept afterwards unless it grew past `kept_cap`.
  void serve_one(Session& s, LineFramer::Buffer& in, std::size_t kept_cap, std::string& out);
  void end(Session& s, Outcome outcome, bool linger);
  void finish_if_drained();
  // Serving may sleep (--delay-ms, or the drain's waits): the rest of the batch goes to other
  // workers and a follower leads meanwhile (WorkQueue::lend_lead).
  [[nodiscard]] bool may_sleep() const;
  void before_sleeping(std::span<Session> rest);
  void drain();
  void close_leftovers();
  void accept_backlog();
  void stop_threads();

  ServerConfig config;
  Fd listener;
  std::string address;
  uint16_t port;
  Fd accept_wake;  // raised by stop(): the acceptor leaves its wait
  Stats stats;
  WorkQueue<Session> queue;
  Fd stop_fd;
  std::atomic<bool> draining{false};
  std::atomic<Clock::rep> drain_deadline{0};
  std::atomic<bool> stopping{false};
  SessionEnv env;
  // Sessions waiting for their client's bytes, and closing connections: the workers wait on it.
  Parked parked;
  // New connections until their first bytes (the full queue could not take them, or a worker
  // found nothing to read yet): the acceptor waits on it with the listener, so that they meet
  // the queue's bound when they become work.
  Parked waiting_new;
  Fd spare;
  bool started = false;
  // Per worker, on its own cache line: serving a batch now (the busy gauge adds them up).
  struct alignas(64) Busy {
    std::atomic<bool> now{false};
  };
  std::unique_ptr<Busy[]> busy;
  WorkerPool pool;
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
  return impl_->parked.sessions() + impl_->waiting_new.sessions();
}
Gauges Server::gauges() const {
  Gauges g;
  g.parked = parked();
  g.queue_depth = impl_->queue.bounded_size();
  g.queue_handed_on = impl_->queue.size() - std::min(impl_->queue.size(), g.queue_depth);
  g.queue_capacity = impl_->config.queue;
  g.workers = impl_->config.workers;
  for (unsigned i = 0; i < impl_->config.workers; ++i) {
    g.workers_busy += impl_->busy[i].now.load(std::memory_order_relaxed) ? 1 : 0;
  }
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
  // If the pool cannot be completed, finishing the queue makes the workers already running
  // return, so that the error reaches main instead of a join that waits for ever.
  pool.start(
      config.workers, [this](unsigned i) { work(i); }, [this] { queue.finish(); });
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
      // Kernel memory pressure: back off briefly rather than spin (stop() ends the pause).
      wait_readable(accept_wake.get(), Clock::now() + Millis{10});
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
  for (int i = 0; i < 64; ++i) {
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

void Server::Impl::admit(Accepted a, bool batch) {
  stats.accepted();
  if (log_enabled(LogLevel::debug)) log_at(LogLevel::debug, "{} accepted", a.peer.str());
  try {
    Session s = new_session(a);
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
    wait_readable(accept_wake.get(), Clock::now() + Millis{5});
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

// Counts how `s` ended and closes it: gracefully (parked.linger) or now. Either way the workers'
// set forgets it first, before its descriptor's number can be reused.
void Server::Impl::end(Session& s, Outcome outcome, bool linger) {
  finish(s, outcome, env);
  if (linger) {
    parked.linger(std::move(s.fd), s.registered);
  } else if (s.registered) {
    parked.forget(s.fd.get());
  }
  s.fd.reset();
}

void Server::Impl::serve_one(Session& s, LineFramer::Buffer& in, std::size_t kept_cap,
                             std::string& out) {
  for (;;) {
    s.framer.borrow(in);
    Verdict v = serve(s, env, out);
    s.framer.give_back(in, kept_cap);
    if (v.kind == Verdict::Kind::close) {
      end(s, v.outcome, v.linger);
      return;
    }
    if (v.kind == Verdict::Kind::again) {
      hand_on(s);
      return;
    }
    // A connection that has sent nothing yet is not work yet: it waits with the acceptor, so
    // that its first bytes meet the queue's bound like any new connection's.
    switch ((sent_nothing(s) ? waiting_new : parked).park(s)) {
      case Parked::Park::parked: return;
      case Parked::Park::ready: continue;  // its client sent again while we had it
      case Parked::Park::refused: break;
    }
    // Refused because the drain has begun: serve() finishes it then (what has arrived is
    // served, a connection that has sent nothing gets its grace). Otherwise the kernel had no
    // memory for the registration.
    if (!draining.load(std::memory_order_acquire)) {
      end(s, Outcome::error, false);
      return;
    }
  }
}

std::optional<Session> Server::Impl::from_queue() {
  if (queue.size() == 0) return std::nullopt;  // no lock for the common case
  auto s = queue.try_pop();
  if (s) stats.queue_waited(Clock::now() - s->queued);
  return s;
}

// Ready work, without sleeping: the queue and the parked set in turn, so that neither starves
// the other.
std::optional<Session> Server::Impl::take_ready(bool& queue_first) {
  if (queue_first) {
    if (auto s = from_queue()) {
      queue_first = false;
      return s;
    }
  }
  queue_first = true;
  for (;;) {
    // With a leader asleep in epoll_wait() the kernel wakes it for anything new: look only at
    // what was kept (an empty look was one system call per one-shot connection).
    Parked::Woken w = queue.leading() ? parked.take_kept() : parked.wait(0);
    if (w.tag == kQueueWake) queue.woken();
    if (w.session) return std::move(w.session);
    if (w.timed_out) break;  // else an event handled there (a deadline, a lingering close)
  }
  auto s = from_queue();
  if (s) queue_first = false;
  return s;
}

// Where a worker's next session comes from: ready work first; with none, the worker waits its
// turn: as the one leader in epoll_wait() on the parked set, or as a follower on the queue.
std::optional<Session> Server::Impl::next_session(bool& queue_first, Scratch& scratch) {
  for (;;) {
    if (draining.load(std::memory_order_acquire)) {
      finish_if_drained();
      if (queue.finished()) return std::nullopt;
    }
    if (auto s = take_ready(queue_first)) return s;
    // Likely to sleep: a worker with nothing to do holds no receive buffer (256 idle workers
    // would hold 4 MiB). Under load workers rarely get here, so this costs no allocation there.
    for (auto& in : scratch.in) in = {};
    auto turn = queue.wait_turn();
    if (turn.item) {
      stats.queue_waited(Clock::now() - turn.item->queued);
      queue_first = false;
      return std::move(turn.item);
    }
    if (!turn.lead) return std::nullopt;  // finished
    Parked::Woken w = parked.wait(-1);
    queue.end_lead();
    if (w.tag == kQueueWake) queue.woken();
    if (w.session) return std::move(w.session);
  }
}

void Server::Impl::hand_on(Session& s) {
  s.queued = Clock::now();
  queue.push(s);  // always taken: at most a batch per worker
}

// Serving sleeps only with --delay-ms or during the drain (a reply its client does not read, or
// a client pausing before its newline, waits parked): the worker knows before it serves, so
// serve() needs no way back into the worker loop.
bool Server::Impl::may_sleep() const {
  return config.delay.count() > 0 || draining.load(std::memory_order_acquire);
}

// A batch is for requests answered at once. Before a worker serves a request that may sleep,
// the rest of its batch, read already, goes through the queue to workers that are free, instead
// of waiting for that sleep. Not during the drain: the queue may be finished already, and serve()
// bounds every wait by the drain deadline.
void Server::Impl::before_sleeping(std::span<Session> rest) {
  if (!draining.load(std::memory_order_acquire)) {
    for (Session& s : rest) {
      if (s.fd) hand_on(s);
    }
  }
  queue.lend_lead(parked.has_kept());
}

// More sessions the parked set has reported ready already (kept from an earlier epoll_wait()),
// up to a batch: no system call.
void Server::Impl::take_ready_batch(std::vector<Session>& batch) {
  while (batch.size() < Scratch::kReadAhead) {
    Parked::Woken w = parked.take_kept();
    if (w.tag == kQueueWake) queue.woken();
    if (w.session) {
      batch.push_back(std::move(*w.session));
    } else if (w.timed_out) {
      return;
    }
  }
}

// Out of memory (or any other failure) in `step` ends this connection, never the process.
template <typename Step>
void Server::Impl::guarded(Session& s, Scratch& scratch, Step step) {
  try {
    step();
  } catch (const std::exception& e) {
    if (s.fd) {
      log_at(LogLevel::error, "{}: {}; closing the connection", s.peer.str(), e.what());
      end(s, Outcome::error, false);
    } else {
      stats.ended(Outcome::error);  // lost while being handed on
    }
    scratch = Scratch{};
  }
}

// Every session of a batch is read before any is answered, so that the replies leave back to
// back. On loopback the server's send() wakes the client, and a client woken per reply cost the
// server more than the batch's reads (docs/DESIGN.md, "Read ahead").
void Server::Impl::serve_batch(std::vector<Session>& batch, Scratch& scratch) {
  if (batch.size() > 1) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      guarded(batch[i], scratch, [&] { read_ahead(batch[i], scratch.in[i], env); });
    }
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].fd) continue;  // its read ahead threw (ended), or handed on
    if (may_sleep()) before_sleeping(std::span<Session>(batch).subspan(i + 1));
    const std::size_t kept_cap = i == 0 ? kKeptReceiveBuffer : kReadAheadChunk;
    guarded(batch[i], scratch, [&] { serve_one(batch[i], scratch.in[i], kept_cap, scratch.out); });
  }
  batch.clear();
}

void Server::Impl::work(unsigned index) {
  stats.bind_thread(index);
  Scratch scratch;
  std::vector<Session> batch;
  batch.reserve(Scratch::kReadAhead);
  bool queue_first = true;
  while (auto first = next_session(queue_first, scratch)) {
    // A session from the parked set comes with others, often: the same epoll_wait() reported them.
    const bool parked_first = first->registered;
    batch.push_back(std::move(*first));
    if (parked_first) take_ready_batch(batch);
    busy[index].now.store(true, std::memory_order_relaxed);
    serve_batch(batch, scratch);
    busy[index].now.store(false, std::memory_order_relaxed);
    if (scratch.out.capacity() > 2 * kReplyBuffer) std::string().swap(scratch.out);
  }
  queue.wake_leader();  // the leader may be asleep in epoll_wait(): it leaves too
}

// The drain is over once nothing is left to serve: the queue closed and empty, nothing parked.
// Sessions a worker holds need nobody else: serve() finishes them during a drain.
void Server::Impl::finish_if_drained() {
  if (queue.closed_and_empty() && parked.sessions() == 0) queue.finish();
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
    hand_on(s);  // always taken: the drain serves it, bounded by the listen backlog
  }
  listener.reset();
}

void Server::Impl::drain() {
  const Clock::time_point deadline = Clock::now() + config.drain_timeout;
  drain_deadline.store(deadline.time_since_epoch().count(), std::memory_order_relaxed);
  draining.store(true, std::memory_order_release);
  // Wakes workers blocked in a request's read or write, so that each re-cuts its wait to the
  // drain deadline. Parked sessions get their drain deadlines; answered idle ones close; those
  // with input waiting are handed out, and the leader is woken to take them.
  raise_eventfd(stop_fd.get());
  if (parked.begin_drain(deadline)) queue.wake_leader();
  // Workers sleep in the drain's waits: someone must watch the parked set meanwhile.
  queue.lend_lead(parked.has_kept());
  // New connections that had sent nothing: their clients connected before the drain.
  waiting_new.begin_drain(deadline);
  for (auto& s : waiting_new.take_all()) hand_on(s);
  try {
    accept_backlog();
  } catch (const std::exception& e) {
    log_at(LogLevel::error, "drain: {}", e.what());
    listener.reset();
  }
  queue.close();
  finish_if_drained();
  // Every wait above ends by the drain deadline; kDrainGrace covers a worker's last steps.
  if (!queue.wait_finished(deadline + kDrainGrace)) {
    log_at(LogLevel::warn, "drain: sessions still open at the deadline are closed");
  }
  stop_threads();
  close_leftovers();
}

// After the workers have gone: whatever is still parked or queued is closed and counted, so
// that every accepted connection has its one outcome.
void Server::Impl::close_leftovers() {
  for (auto& s : parked.take_all()) end(s, expired_outcome(s, true), false);
  for (auto& s : waiting_new.take_all()) end(s, expired_outcome(s, true), false);
  while (auto s = queue.try_pop()) end(*s, expired_outcome(*s, true), false);
}

void Server::Impl::stop_threads() {
  queue.close();
  queue.finish();
  pool.join();
}

}  // namespace tcpd
