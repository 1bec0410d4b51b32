#include <algorithm>
#include <exception>
#include <span>
#include <vector>

#include "log.hpp"
#include "server_impl.hpp"

namespace tcpd {

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
                             std::string& out, const SessionEnv& mine) {
  for (;;) {
    s.framer.borrow(in);
    Verdict v = serve(s, mine, out);
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

std::optional<Session> Server::Impl::from_queue(const Recorder& rec) {
  if (queue.size() == 0) return std::nullopt;  // no lock for the common case
  auto s = queue.try_pop();
  if (s) rec.queue_waited(Clock::now() - s->queued);
  return s;
}

// Ready work, without sleeping: the queue and the parked set in turn, so that neither starves
// the other.
std::optional<Session> Server::Impl::take_ready(bool& queue_first, const Recorder& rec) {
  if (queue_first) {
    if (auto s = from_queue(rec)) {
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
  auto s = from_queue(rec);
  if (s) queue_first = false;
  return s;
}

// Where a worker's next session comes from: ready work first; with none, the worker waits its
// turn: as the one leader in epoll_wait() on the parked set, or as a follower on the queue.
std::optional<Session> Server::Impl::next_session(bool& queue_first, Scratch& scratch,
                                                  const Recorder& rec) {
  for (;;) {
    if (draining.load(std::memory_order_acquire)) {
      finish_if_drained();
      if (queue.finished()) return std::nullopt;
    }
    if (auto s = take_ready(queue_first, rec)) return s;
    // Likely to sleep: a worker with nothing to do holds no receive buffer (256 idle workers
    // would hold 4 MiB). Under load workers rarely get here, so this costs no allocation there.
    for (auto& in : scratch.in) in = {};
    auto turn = queue.wait_turn();
    if (turn.item) {
      rec.queue_waited(Clock::now() - turn.item->queued);
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
  while (batch.size() < kReadAhead) {
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
void Server::Impl::serve_batch(std::vector<Session>& batch, Scratch& scratch,
                               const SessionEnv& mine) {
  if (batch.size() > 1) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
      guarded(batch[i], scratch, [&] { read_ahead(batch[i], scratch.in[i], mine); });
    }
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].fd) continue;  // its read ahead threw (ended), or handed on
    if (may_sleep()) before_sleeping(std::span<Session>(batch).subspan(i + 1));
    const std::size_t kept_cap = i == 0 ? kKeptReceiveBuffer : kReadAheadChunk;
    guarded(batch[i], scratch,
            [&] { serve_one(batch[i], scratch.in[i], kept_cap, scratch.out, mine); });
  }
  batch.clear();
}

void Server::Impl::work(unsigned index) {
  // This worker's own environment: what it records goes to its own slot of the counters.
  const SessionEnv mine{config,         stats,     stats.recorder(index), stop_fd.get(), draining,
                        drain_deadline, &admission};
  Scratch scratch;
  std::vector<Session> batch;
  batch.reserve(kReadAhead);
  bool queue_first = true;
  while (auto first = next_session(queue_first, scratch, mine.rec)) {
    // A session from the parked set comes with others, often: the same epoll_wait() reported them.
    const bool parked_first = first->registered;
    batch.push_back(std::move(*first));
    if (parked_first) take_ready_batch(batch);
    busy[index].now.store(true, std::memory_order_relaxed);
    serve_batch(batch, scratch, mine);
    busy[index].now.store(false, std::memory_order_relaxed);
    if (scratch.out.capacity() > 2 * kReplyBuffer) std::string().swap(scratch.out);
  }
  queue.wake_leader();  // the leader may be asleep in epoll_wait(): it leaves too
}

}  // namespace tcpd
