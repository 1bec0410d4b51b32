#include "server.hpp"

#include <algorithm>
#include <exception>

#include "eventfd.hpp"
#include "log.hpp"
#include "server_impl.hpp"

namespace tcpd {

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
  g.clients_tracked = impl_->admission.tracked();
  return g;
}
std::optional<UdpSnapshot> Server::udp_stats() const {
  if (!impl_->udp) return std::nullopt;
  return impl_->udp->snapshot();
}
std::string Server::counters() const {
  std::string line = stats().format();
  if (auto u = udp_stats()) line += " " + u->format();
  return line;
}
std::size_t Server::udp_sources_tracked() const {
  return impl_->udp ? impl_->udp->sources_tracked() : 0;
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
  if (udp) udp->start();
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

// The drain is over once nothing is left to serve: the queue closed and empty, nothing parked.
// Sessions a worker holds need nobody else: serve() finishes them during a drain.
void Server::Impl::finish_if_drained() {
  if (queue.closed_and_empty() && parked.sessions() == 0) queue.finish();
}

void Server::Impl::drain() {
  const Clock::time_point deadline = Clock::now() + config.drain_timeout;
  drain_deadline.store(deadline.time_since_epoch().count(), std::memory_order_relaxed);
  draining.store(true, std::memory_order_release);
  if (udp) udp->begin_drain(deadline);
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
  if (udp) udp->join();
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
