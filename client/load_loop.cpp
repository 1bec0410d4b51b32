#include "load_loop.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <string_view>

#include "exchange.hpp"

namespace tcpd {
namespace {

constexpr std::size_t kReadBuffer = 64 * 1024;  // one per loop, not per connection
constexpr int kMaxEvents = 256;
constexpr auto kStopPoll = Millis{50};    // how often a quiet loop looks at the stop flag
constexpr auto kLateAtEnd = Millis{10};   // see no_tickets_left()
constexpr auto kScanEvery = Millis{10};   // deadline resolution: connections are scanned, so
                                          // no per-request timer entry outlives its request
constexpr auto kRetryAfter = Millis{1};   // after running out of ports or descriptors
constexpr std::size_t kKeepInput = 4096;  // a connection's reply buffer above this is freed

// Where a connection is. `idle` slots wait in the loop's FIFO for a request; with --keepalive
// they keep their socket there.
enum class Phase : uint8_t { unstarted, idle, connecting, sending, waiting, delayed };

struct Slot {
  Fd fd;
  std::string in;            // a reply's bytes so far, when it spans reads (usually empty)
  Clock::time_point t0{};    // latency counts from here: the due time with --rate, else `sent`
  Clock::time_point sent{};  // when the request was begun (before its connect, if it needed one)
  Clock::time_point deadline = Clock::time_point::max();
  std::size_t offset = 0;  // bytes of the request sent
  uint64_t global = 0;     // index among all the run's connections
  uint32_t conn_gen = 0;   // one per socket: tells a stale epoll event from a live one
  uint32_t msg = 0;        // which request
  Phase phase = Phase::unstarted;
  bool has_request = false;
  bool reused = false;       // the socket was open before this request (it may have closed since)
  bool retried = false;      // this request was already sent again on a new connection
  bool got_bytes = false;    // any byte of this request's reply
  bool readable = false;     // an input edge came while the slot was not reading
  bool reopen = false;       // the server closed this idle keep-alive connection
  bool peer_closed = false;  // an event said the server shut its side (EPOLLRDHUP/EPOLLHUP)
};

bool is_busy(Phase p) {
  return p == Phase::connecting || p == Phase::sending || p == Phase::waiting;
}

Failure io_failure(int err) {
  return (err == ECONNRESET || err == EPIPE) ? Failure::reset : Failure::other;
}

std::string_view without_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

uint64_t micros(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

class Loop {
 public:
  Loop(RunState& run, unsigned index, LoadResult& r, Window* window)
      : run_(run),
        cfg_(run.cfg),
        sched_(run.schedule),
        index_(index),
        r_(r),
        window_(window),
        expect_(run.cfg.expect ? &*run.cfg.expect : nullptr),
        buf_(kReadBuffer) {
    slots_.resize(share_of(index, run.threads, cfg_.concurrency));
    for (std::size_t s = 0; s < slots_.size(); ++s) {
      slots_[s].global = index + s * run.threads;
    }
  }

  void run() {
    // The default 50 us timer slack would make every --rate send that much late.
    ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    for (;;) {
      const auto now = Clock::now();
      start_due_slots(now);
      resume_delayed(now);
      if (now >= next_scan_) {
        expire(now);
        next_scan_ = now + kScanEvery;
      }
      issue(now);
      if (finished(now)) return;
      wait(now);
    }
  }

 private:
  // --- one turn of the loop ---

  // --ramp-up: slots start at their turn. A keep-alive slot under --rate opens its connection
  // then, so the run holds its connections before (and between) their requests.
  void start_due_slots(Clock::time_point now) {
    while (next_start_ < slots_.size() && start_of(next_start_) <= now) {
      const auto s = static_cast<uint32_t>(next_start_++);
      Slot& slot = slots_[s];
      if (slot.global == 0 && run_.first) {
        adopt_first(s);
      } else if (cfg_.keepalive && cfg_.rate > 0) {
        open(s, now);
      } else {
        make_idle(s);
      }
    }
  }

  void resume_delayed(Clock::time_point now) {
    while (!delayed_.empty() && delayed_.front().first <= now) {
      make_idle(delayed_.front().second);
      delayed_.pop_front();
    }
  }

  void expire(Clock::time_point now) {
    for (uint32_t s = 0; s < slots_.size(); ++s) {
      Slot& slot = slots_[s];
      if (!is_busy(slot.phase) || slot.deadline > now) continue;
      if (slot.has_request) {
        finish(s, Failure::timeout, true);
      } else {  // a connection opened ahead of its first request did not open in time
        --pending_opens_;
        close(slot);
        make_idle(s);
      }
    }
  }

  // Hands due requests to idle connections, oldest idle first. Each idle slot is offered one
  // request per turn, so a connect that fails at once cannot spin the loop.
  void issue(Clock::time_point now) {
    for (std::size_t n = idle_.size(); n > 0 && !idle_.empty(); --n) {
      const auto due = take_ticket(now);
      if (!due) return;
      const uint32_t s = idle_.front();
      idle_.pop_front();
      begin(s, *due, now);
    }
  }

  // With --duration a loop lasts the whole duration even when its share of the requests is
  // done early (a low --rate): its connections stay open, as the run's user asked.
  [[nodiscard]] bool finished(Clock::time_point now) {
    if (run_.stopped()) return true;  // what is in flight is abandoned, not counted
    if (!exhausted_) exhausted_ = no_tickets_left(now);
    const bool held = sched_.end != Clock::time_point::max() && now < sched_.end;
    return exhausted_ && in_flight_ == 0 && !held;
  }

  void wait(Clock::time_point now) {
    auto until = now + kStopPoll;
    if (next_start_ < slots_.size()) until = std::min(until, start_of(next_start_));
    if (!delayed_.empty()) until = std::min(until, delayed_.front().first);
    if (in_flight_ > 0 || pending_opens_ > 0) until = std::min(until, next_scan_);
    if (!idle_.empty() && !exhausted_) until = std::min(until, next_due(now));
    if (exhausted_ && in_flight_ == 0) until = std::min(until, sched_.end);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::max(until - now, Clock::duration::zero()))
                        .count();
    const timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    std::array<epoll_event, kMaxEvents> events{};
    const int n = ::epoll_pwait2(epoll_.get(), events.data(), kMaxEvents, &ts, nullptr);
    for (int i = 0; i < n; ++i) on_event(events[static_cast<std::size_t>(i)]);
  }

  // --- tickets ---

  // The next request's due time: now in a closed loop, its scheduled time with --rate;
  // nullopt when none is due yet or none is left.
  std::optional<Clock::time_point> take_ticket(Clock::time_point now) {
    if (exhausted_ || (exhausted_ = no_tickets_left(now))) return std::nullopt;
    if (sched_.rate <= 0) {
      if (sched_.max_tickets != UINT64_MAX &&
          run_.closed_tickets.fetch_add(1, std::memory_order_relaxed) >= sched_.max_tickets) {
        exhausted_ = true;
        return std::nullopt;
      }
      return now;
    }
    const auto due = sched_.due(Schedule::ticket_of(index_, run_.threads, next_k_));
    if (due > now) return std::nullopt;
    ++next_k_;
    run_.open_tickets.fetch_add(1, std::memory_order_relaxed);
    return due;
  }

  // A request is sent late when the connections were busy (its latency then shows the wait),
  // but not after the end of --duration (give or take the loop's own wake-up, kLateAtEnd):
  // what the schedule could not send by then is reported as unsent, so that a run ends on time
  // whatever --rate asked.
  [[nodiscard]] bool no_tickets_left(Clock::time_point now) const {
    if (run_.stopped()) return true;
    if (sched_.rate > 0) {
      if (sched_.end != Clock::time_point::max() && now >= sched_.end + kLateAtEnd) return true;
      return !sched_.scheduled(Schedule::ticket_of(index_, run_.threads, next_k_));
    }
    if (now >= sched_.end) return true;
    return sched_.max_tickets != UINT64_MAX &&
           run_.closed_tickets.load(std::memory_order_relaxed) >= sched_.max_tickets;
  }

  [[nodiscard]] Clock::time_point next_due(Clock::time_point now) const {
    if (sched_.rate <= 0) return now;
    return sched_.due(Schedule::ticket_of(index_, run_.threads, next_k_));
  }

  [[nodiscard]] Clock::time_point start_of(std::size_t s) const {
    return sched_.start + ramp_offset(cfg_.ramp_up_s, slots_[s].global, cfg_.concurrency);
  }

  // --- one request ---

  void begin(uint32_t s, Clock::time_point due, Clock::time_point now) {
    Slot& slot = slots_[s];
    // Open loop: latency counts from when the request was due, so a stalled server cannot
    // hide the queueing it causes (coordinated omission).
    slot.t0 = cfg_.rate > 0 ? due : now;
    slot.sent = now;
    slot.msg = static_cast<uint32_t>(sent_count_++ % run_.requests.size());
    slot.offset = 0;
    slot.has_request = true;
    slot.retried = false;
    slot.got_bytes = false;
    ++in_flight_;
    if (!slot.fd) {
      open(s, now);
      return;
    }
    slot.reused = true;
    slot.phase = Phase::sending;
    slot.deadline = now + cfg_.timeout;
    send_rest(s);
  }

  // A non-blocking connect. With a request waiting, it is sent at once: on loopback the
  // handshake is usually complete when connect() returns, and if it is not, send() says EAGAIN
  // and the connection's EPOLLOUT edge sends it.
  void open(uint32_t s, Clock::time_point now) {
    Slot& slot = slots_[s];
    if (slot.reopen) {
      ++r_.reconnects;
      slot.reopen = false;
    }
    const auto* sa = reinterpret_cast<const sockaddr*>(&run_.target.addr);
    Fd fd(::socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return connect_failed(s, errno);
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Each new connection of a slot moves to the next source address, so that one slot's
    // connections (without --keepalive) never wait for one address's ports.
    if (!run_.sources.empty() && !bind_source(fd.get(), slot.global + slot.conn_gen)) {
      return connect_failed(s, errno);
    }
    if (!watch(s, fd.get())) return connect_failed(s, errno);
    slot.fd = std::move(fd);
    slot.reused = false;
    slot.phase = Phase::connecting;
    slot.deadline = now + cfg_.timeout;
    if (!slot.has_request) ++pending_opens_;
    if (::connect(slot.fd.get(), sa, run_.target.len) != 0 && errno != EINPROGRESS) {
      return connect_failed(s, errno);
    }
    if (slot.has_request) send_rest(s);
  }

  // Registers slot `s`'s new connection, edge-triggered, once. The key carries the slot's
  // connection generation, so that events left from its previous connection are dropped.
  bool watch(uint32_t s, int fd) {
    Slot& slot = slots_[s];
    ++slot.conn_gen;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = s | (uint64_t{slot.conn_gen} << 32);
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  }

  bool bind_source(int fd, uint64_t pick) {
    const int one = 1;
    // Without it, bind() picks the port before the destination is known, and the 4-tuple space
    // the source address was added for is lost.
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    const sockaddr_storage& src = run_.sources[pick % run_.sources.size()];
    return ::bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof(sockaddr_in)) == 0;
  }

  void adopt_first(uint32_t s) {
    Slot& slot = slots_[s];
    Fd fd = std::move(run_.first);
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
    if (watch(s, fd.get())) slot.fd = std::move(fd);
    slot.reused = true;
    make_idle(s);
  }

  void connect_failed(uint32_t s, int err) {
    Slot& slot = slots_[s];
    if (err == EADDRNOTAVAIL) ++r_.out_of_ports;
    if (err == EMFILE || err == ENFILE) ++r_.out_of_fds;
    const bool starved = err == EADDRNOTAVAIL || err == EMFILE || err == ENFILE;
    if (!slot.has_request) {  // a connection opened ahead of its first request
      if (slot.phase == Phase::connecting) --pending_opens_;
      close(slot);
      make_idle(s);
      return;
    }
    finish(s, classify_connect(err), true, starved);
  }

  void on_connected(uint32_t s) {
    Slot& slot = slots_[s];
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(slot.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return connect_failed(s, err);
    if (!slot.has_request) {
      --pending_opens_;
      slot.reused = true;  // it waits for its first request, and may be closed meanwhile
      make_idle(s);
      return;
    }
    send_rest(s);
  }

  void send_rest(uint32_t s) {
    Slot& slot = slots_[s];
    const std::string& req = run_.requests[slot.msg];
    while (slot.offset < req.size()) {
      const ssize_t n =
          ::send(slot.fd.get(), req.data() + slot.offset, req.size() - slot.offset, MSG_NOSIGNAL);
      if (n >= 0) {
        slot.offset += static_cast<std::size_t>(n);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;  // the EPOLLOUT edge resumes it
      // While connecting, send() reports the connect's own failure (ECONNREFUSED).
      if (slot.phase == Phase::connecting) return connect_failed(s, errno);
      return fail(s, io_failure(errno));
    }
    slot.phase = Phase::waiting;
    if (slot.readable) {
      slot.readable = false;
      read_reply(s);
    }
  }

  // The reply's newline is at `nl` in the `got` bytes just read into buf_.
  void reply_ends(uint32_t s, std::size_t got, const char* nl) {
    Slot& slot = slots_[s];
    const auto line_len = static_cast<std::size_t>(nl - buf_.data());
    Failure f = Failure::none;
    if (slot.in.empty()) {
      f = classify_reply(without_cr({buf_.data(), line_len}), expect_);
    } else {
      slot.in.append(buf_.data(), line_len);
      f = classify_reply(without_cr(slot.in), expect_);
    }
    slot.in.assign(nl + 1, got - line_len - 1);  // bytes past the reply (none, normally)
    // The server's FIN came with (or before) the reply: edge-triggered, it will not be
    // reported again, and a proxy that half-closed would take the next request and never
    // answer it. The connection ends here; the next request opens a new one.
    if (slot.peer_closed && cfg_.keepalive && f == Failure::none) slot.reopen = true;
    finish(s, f, slot.peer_closed);
  }

  void read_reply(uint32_t s) {
    Slot& slot = slots_[s];
    for (;;) {
      const ssize_t n = ::recv(slot.fd.get(), buf_.data(), buf_.size(), 0);
      if (n > 0) {
        slot.got_bytes = true;
        const auto got = static_cast<std::size_t>(n);
        const auto* nl = static_cast<const char*>(std::memchr(buf_.data(), '\n', got));
        if (nl == nullptr) {
          slot.in.append(buf_.data(), got);
          if (slot.in.size() > cfg_.max_reply) return finish(s, Failure::reply_too_long, true);
          continue;
        }
        return reply_ends(s, got, nl);
      }
      if (n == 0) {
        if (slot.in.empty()) return fail(s, Failure::reset);  // closed without a reply
        // A reply ended by the close rather than a newline: a one-shot server.
        const Failure f = classify_reply(without_cr(slot.in), expect_);
        return finish(s, f, true);
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      return fail(s, io_failure(errno));
    }
  }

  // A keep-alive connection between requests: input here is the server closing it (its idle
  // timeout, a drain); the next request opens a new one.
  void on_idle_input(uint32_t s) {
    Slot& slot = slots_[s];
    for (;;) {
      const ssize_t n = ::recv(slot.fd.get(), buf_.data(), buf_.size(), 0);
      if (n > 0) {
        slot.in.append(buf_.data(), static_cast<std::size_t>(n));  // unasked-for bytes, kept
        if (slot.in.size() <= cfg_.max_reply) continue;
        slot.in.clear();  // a server flooding an idle connection: it is closed
        close(slot);
        slot.reopen = true;
        return;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      close(slot);
      slot.reopen = true;
      return;
    }
  }

  // A reused keep-alive connection that the server had already closed (its idle timeout, a
  // drain in a rolling restart) fails before any byte of a reply; like an HTTP client, tcpc
  // sends the request once more on a new connection, which a load balancer or a restarted
  // server takes.
  void fail(uint32_t s, Failure f) {
    Slot& slot = slots_[s];
    if (f == Failure::reset && slot.reused && !slot.got_bytes && !slot.retried) {
      ++r_.reconnects;
      slot.retried = true;
      slot.offset = 0;
      close(slot);
      open(s, Clock::now());
      return;
    }
    finish(s, f, true);
  }

  void finish(uint32_t s, Failure f, bool closed, bool starved = false) {
    Slot& slot = slots_[s];
    record(f, slot);
    slot.has_request = false;
    --in_flight_;
    if (f != Failure::none || !cfg_.keepalive || closed) close(slot);
    if (starved) {
      // A failing connect in a tight loop would only burn the ports or descriptors it lacks.
      slot.phase = Phase::delayed;
      delayed_.emplace_back(Clock::now() + kRetryAfter, s);
      return;
    }
    make_idle(s);
  }

  void record(Failure f, const Slot& slot) {
    const auto done = Clock::now();
    // --warmup: what completes before the measured window opens counts nowhere.
    if (done < run_.measured_from) return;
    ++r_.requests;
    r_.last_done = done;
    run_.done.fetch_add(1, std::memory_order_relaxed);
    if (window_ != nullptr) {
      std::lock_guard lock(window_->mu);
      if (f == Failure::none) window_->latency.record(micros(done - slot.t0));
      ++(f == Failure::none ? window_->ok : window_->failed);
    }
    if (f != Failure::none) {
      ++r_.failures[static_cast<std::size_t>(f)];
      return;
    }
    ++r_.ok;
    r_.latency.record(micros(done - slot.t0));
    if (r_.latency_uncorrected) r_.latency_uncorrected->record(micros(done - slot.sent));
    run_.ok.fetch_add(1, std::memory_order_relaxed);
  }

  // --- plumbing ---

  void on_event(const epoll_event& ev) {
    const auto s = static_cast<uint32_t>(ev.data.u64 & 0xffffffffU);
    Slot& slot = slots_[s];
    if (!slot.fd || slot.conn_gen != static_cast<uint32_t>(ev.data.u64 >> 32)) return;
    const uint32_t e = ev.events;
    if ((e & (EPOLLRDHUP | EPOLLHUP)) != 0) slot.peer_closed = true;
    const bool in = (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    const bool out = (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
    switch (slot.phase) {
      case Phase::connecting:
        if (in) slot.readable = true;
        if (out) on_connected(s);
        break;
      case Phase::sending:
        if (in) slot.readable = true;
        if (out) send_rest(s);
        break;
      case Phase::waiting:
        if (in) read_reply(s);
        break;
      case Phase::idle:
        if (in) on_idle_input(s);
        break;
      default: break;
    }
  }

  void make_idle(uint32_t s) {
    slots_[s].phase = Phase::idle;
    idle_.push_back(s);
  }

  static void close(Slot& slot) {
    slot.fd.reset();
    ++slot.conn_gen;
    slot.readable = false;
    slot.peer_closed = false;
    if (slot.in.capacity() > kKeepInput) {
      std::string().swap(slot.in);
    } else {
      slot.in.clear();
    }
  }

  RunState& run_;
  const ClientConfig& cfg_;
  const Schedule& sched_;
  unsigned index_;
  LoadResult& r_;
  Window* window_;
  const std::string* expect_;
  std::vector<char> buf_;
  Fd epoll_;
  std::vector<Slot> slots_;
  std::deque<uint32_t> idle_;                                   // FIFO: every connection used
  std::deque<std::pair<Clock::time_point, uint32_t>> delayed_;  // FIFO: one fixed delay
  std::size_t next_start_ = 0;  // slots before this one have started (--ramp-up)
  uint64_t next_k_ = 0;         // --rate: this loop's next ticket, as k in Schedule::ticket_of
  uint64_t sent_count_ = 0;
  std::size_t in_flight_ = 0;      // slots with a request
  std::size_t pending_opens_ = 0;  // connections opened ahead of their first request
  Clock::time_point next_scan_{};
  bool exhausted_ = false;
};

}  // namespace

void run_loop(RunState& run, unsigned index, LoadResult& r, Window* window) {
  Loop(run, index, r, window).run();
}

}  // namespace tcpd
