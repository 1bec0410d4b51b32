#pragma once

// The server's parts and what they share, for its three source files: the acceptor
// (acceptor.cpp), the workers (worker.cpp), and the server's life: start, drain, stop
// (server.cpp).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "admission.hpp"
#include "fd.hpp"
#include "parked.hpp"
#include "server.hpp"
#include "session.hpp"
#include "socket.hpp"
#include "tuning.hpp"
#include "udp_service.hpp"
#include "work_queue.hpp"
#include "worker_pool.hpp"

namespace tcpd {

// Held open so that, when accept() fails with EMFILE, closing it frees one descriptor to accept
// the waiting connection instead of leaving it in the backlog to be retried.
Fd open_spare();
// The listener, non-blocking (acceptor.cpp says why).
Fd make_listener(const ServerConfig& cfg);

enum class Accept { accepted, empty, retry, out_of_fds };

struct Accepted {
  Accept status;
  Fd fd;
  PeerAddress peer;
};

// What a wait() on the parked sets may return besides a session.
inline constexpr uint64_t kQueueWake =
    Parked::kFirstTag;  // workers' set: the queue needs the leader
inline constexpr uint64_t kListener = Parked::kFirstTag + 1;    // acceptor's set
inline constexpr uint64_t kAcceptWake = Parked::kFirstTag + 2;  // acceptor's set: stop()
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
        admission(config),
        env{config, stats, stats.shared(), stop_fd.get(), draining, drain_deadline, &admission},
        parked(env, true, true),
        waiting_new(env, false, false),
        spare(open_spare()),
        busy(std::make_unique<Busy[]>(config.workers)) {
    parked.watch(queue.wake_fd(), kQueueWake, true);
    waiting_new.watch(listener.get(), kListener, false);
    waiting_new.watch(accept_wake.get(), kAcceptWake, false);
    if (config.udp) udp = std::make_unique<UdpService>(config, listener.get());
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
  // The rules a connection meets at accept: --proxy-from with --proxy-protocol (the rest wait for
  // its header), else --allow/--deny and --max-conns-per-client. False when it was turned away.
  bool screen(Session& s);
  // Hands a session read already (or with more input waiting) to the next free worker, outside
  // the queue's bound.
  void hand_on(Session& s);
  void shed();
  void work(unsigned index);
  // `rec`: the calling worker's recorder.
  std::optional<Session> next_session(bool& queue_first, Scratch& scratch, const Recorder& rec);
  std::optional<Session> take_ready(bool& queue_first, const Recorder& rec);
  std::optional<Session> from_queue(const Recorder& rec);
  void take_ready_batch(std::vector<Session>& batch);
  // `mine`: the worker's own environment (its recorder).
  void serve_batch(std::vector<Session>& batch, Scratch& scratch, const SessionEnv& mine);
  template <typename Step>
  void guarded(Session& s, Scratch& scratch, Step step);
  // `in`: the receive buffer lent to `s`, kept afterwards unless it grew past `kept_cap`.
  void serve_one(Session& s, LineFramer::Buffer& in, std::size_t kept_cap, std::string& out,
                 const SessionEnv& mine);
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
  Admission admission;
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
  std::unique_ptr<UdpService> udp;  // --udp
  Clock::time_point last_fd_warning{};
};

}  // namespace tcpd
