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
// Closer than this to a send's due time, the loop polls instead of sleeping (see wait()), and
// never further than kMaxSpin.
constexpr Clock::duration kSpinWindow = std::chrono::microseconds(50);
constexpr Clock::duration kMaxSpin = std::chrono::milliseconds(1);
constexpr int kSpinShare = 20;  // polling takes at most 1/20 of the time between sends

// Where a connection is. `idle` slots have no request in flight; with --keepalive they keep
// their socket. `active` ones have requests in flight (being sent, or awaiting replies).
enum class Phase : uint8_t { unstarted, idle, connecting, active, delayed };

// A request in flight on a connection.
struct Pending {
  Clock::time_point t0{};    // latency counts from here: the due time with --rate, else `sent`
  Clock::time_point sent{};  // when the request was begun (before its connect, if it needed one)
  uint32_t bytes = 0;        // its size in the slot's output
};

struct Slot {
  Fd fd;
  std::string in;   // a reply's bytes so far, when it spans reads (usually empty)
  std::string out;  // the requests in flight, rendered: [0, acked) answered, [0, offset) sent
  std::vector<Pending> ring;  // requests in flight, oldest at `head` (capacity: --pipeline)
  Clock::time_point deadline = Clock::time_point::max();
  std::size_t offset = 0;
  std::size_t acked = 0;
  uint64_t global = 0;    // index among all the run's connections
  uint32_t conn_gen = 0;  // one per socket: tells a stale epoll event from a live one
  uint32_t head = 0;
  uint32_t count = 0;  // requests in flight
  uint16_t target = 0;
  Phase phase = Phase::unstarted;
  bool offered = false;      // in the loop's queue of slots that can take a request
  bool reused = false;       // the socket was open before these requests (it may have closed)
  bool retried = false;      // these requests were already sent again on a new connection
  bool got_bytes = false;    // any reply byte since the connection last went idle
  bool readable = false;     // an input edge came while the slot was connecting
  bool reopen = false;       // the server closed this idle keep-alive connection
  bool peer_closed = false;  // an event said the server shut its side (EPOLLRDHUP/EPOLLHUP)

  Pending& front() { return ring[head]; }
};

bool is_busy(Phase p) {
  return p == Phase::connecting || p == Phase::active;
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

// A due request's time and its number in the run ({seq}).
struct Ticket {
  Clock::time_point due;
  uint64_t seq;
};

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
        buf_(kReadBuffer),
        rng_(0x9e3779b97f4a7c15ULL * (index + 1) ^
             static_cast<uint64_t>(Clock::now().time_since_epoch().count())) {
    slots_.resize(share_of(index, run.threads, cfg_.concurrency));
    for (std::size_t s = 0; s < slots_.size(); ++s) {
      slots_[s].global = index + s * run.threads;
      slots_[s].target = static_cast<uint16_t>(slots_[s].global % run.targets.size());
    }
  }

  void run() {
    // The default 50 us timer slack would make every --rate send that much late.
    ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (sched_.rate > 0) {
      const auto gap = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(run_.threads / sched_.rate));
      max_early_ = std::min(kMaxSpin, gap / kSpinShare);
      min_early_ = std::min(kSpinWindow, max_early_);
      early_ = min_early_;
    }
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
      slot.ring.resize(cfg_.pipeline);
      if (slot.global < run_.firsts.size() && run_.firsts[slot.global]) {
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
      if (slot.count > 0) {
        abort_all(s, Failure::timeout);
      } else {  // a connection opened ahead of its first request did not open in time
        --pending_opens_;
        close(slot);
        make_idle(s);
      }
    }
  }

  // Hands due requests to connections with room, oldest offered first. Each offered slot is
  // visited once per turn, so a connect that fails at once cannot spin the loop. A closed loop
  // fills a slot's --pipeline at once (one write); an open loop gives each slot one due request
  // and offers it again behind the others, spreading the schedule over the connections.
  void issue(Clock::time_point now) {
    for (std::size_t n = offered_.size(); n > 0 && !offered_.empty(); --n) {
      auto ticket = take_ticket(now);
      if (!ticket) return;
      const uint32_t s = offered_.front();
      offered_.pop_front();
      slots_[s].offered = false;
      add_request(s, *ticket, now);
      while (sched_.rate <= 0 && has_room(slots_[s]) && (ticket = take_ticket(now))) {
        add_request(s, *ticket, now);
      }
      send_added(s, now);
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

  // Sleeps until the next thing to do. A send due sooner than kSpinWindow is waited for by
  // polling, and a longer sleep ends that much early: waking from a sleep takes tens of µs, and
  // each of them would be the send's lateness, counted as the server's latency.
  void wait(Clock::time_point now) {
    auto until = now + kStopPoll;
    if (next_start_ < slots_.size()) until = std::min(until, start_of(next_start_));
    if (!delayed_.empty()) until = std::min(until, delayed_.front().first);
    if (in_flight_ > 0 || pending_opens_ > 0) until = std::min(until, next_scan_);
    if (exhausted_ && in_flight_ == 0) until = std::min(until, sched_.end);
    bool send_due = false;
    if (!offered_.empty() && !exhausted_) {
      const auto due = next_due(now);
      send_due = due <= until;
      until = std::min(until, due);
    }
    auto left = std::max(until - now, Clock::duration::zero());
    const bool before_send = send_due && sched_.rate > 0;
    const bool timed = before_send && left > early_;
    if (before_send) left = timed ? left - early_ : Clock::duration::zero();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    const timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    std::array<epoll_event, kMaxEvents> events{};
    const int n = ::epoll_pwait2(epoll_.get(), events.data(), kMaxEvents, &ts, nullptr);
    if (timed && n == 0) learn_wakeup(Clock::now() - (now + left));
    for (int i = 0; i < n; ++i) on_event(events[static_cast<std::size_t>(i)]);
  }

  // How late a timed sleep ended. A CPU that was idle can take 100 µs or more to wake (deep
  // idle states, a virtual machine's host): sleeps before a send end that much earlier, with a
  // margin, learnt quickly and forgotten slowly. The polling this buys is capped at
  // kSpinShare of the time between this loop's sends (and kMaxSpin): at a high rate, polling
  // would take the CPU a server on the same machine needs, and sleeps are short anyway.
  void learn_wakeup(Clock::duration over) {
    const Clock::duration want = over + over / 2;
    early_ =
        std::clamp<Clock::duration>(std::max(want, early_ - early_ / 16), min_early_, max_early_);
  }

  // --- tickets ---

  // The next request's due time (now in a closed loop, its scheduled time with --rate) and
  // number; nullopt when none is due yet or none is left.
  std::optional<Ticket> take_ticket(Clock::time_point now) {
    if (exhausted_ || (exhausted_ = no_tickets_left(now))) return std::nullopt;
    if (sched_.rate <= 0) {
      if (sched_.max_tickets == UINT64_MAX) {
        return Ticket{now, Schedule::ticket_of(index_, run_.threads, closed_k_++)};
      }
      const uint64_t t = run_.closed_tickets.fetch_add(1, std::memory_order_relaxed);
      if (t >= sched_.max_tickets) {
        exhausted_ = true;
        return std::nullopt;
      }
      return Ticket{now, t};
    }
    const uint64_t t = Schedule::ticket_of(index_, run_.threads, next_k_);
    const auto due = sched_.due(t);
    if (due > now) return std::nullopt;
    ++next_k_;
    run_.open_tickets.fetch_add(1, std::memory_order_relaxed);
    return Ticket{due, t};
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

  // --- requests ---

  [[nodiscard]] bool has_room(const Slot& slot) const {
    return slot.count < cfg_.pipeline && slot.phase != Phase::delayed;
  }

  // Puts one request in slot `s`'s output; send_added() sends what was added.
  void add_request(uint32_t s, const Ticket& ticket, Clock::time_point now) {
    Slot& slot = slots_[s];
    if (slot.count == 0) {
      slot.got_bytes = false;
      slot.retried = false;
      slot.reused = static_cast<bool>(slot.fd);
      slot.deadline = now + cfg_.timeout;
    }
    const std::size_t before = slot.out.size();
    const MessageTemplate& m = run_.requests[sent_count_++ % run_.requests.size()];
    m.render(slot.global, ticket.seq, rng_, slot.out);
    // Open loop: latency counts from when the request was due, so a stalled server cannot
    // hide the queueing it causes (coordinated omission).
    Pending& p = slot.ring[(slot.head + slot.count) % slot.ring.size()];
    p.t0 = cfg_.rate > 0 ? ticket.due : now;
    p.sent = now;
    p.bytes = static_cast<uint32_t>(slot.out.size() - before);
    ++slot.count;
    ++in_flight_;
    if (cfg_.rate > 0 && ticket.due >= run_.measured_from && r_.send_lateness) {
      r_.send_lateness->record(micros(now - ticket.due));
    }
  }

  void send_added(uint32_t s, Clock::time_point now) {
    Slot& slot = slots_[s];
    switch (slot.phase) {
      case Phase::idle:
        if (!slot.fd) {
          open(s, now);
          break;
        }
        slot.phase = Phase::active;
        send_rest(s);
        break;
      case Phase::active: send_rest(s); break;
      default: break;  // connecting: on_connected() sends it
    }
    offer(s);
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
    const Target& target = run_.targets[slot.target];
    const auto* sa = reinterpret_cast<const sockaddr*>(&target.addr);
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
    if (slot.count == 0) {
      slot.deadline = now + cfg_.timeout;
      ++pending_opens_;
    }
    if (::connect(slot.fd.get(), sa, target.len) != 0 && errno != EINPROGRESS) {
      return connect_failed(s, errno);
    }
    if (slot.count > 0) send_rest(s);
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
    const Target& src = run_.sources[pick % run_.sources.size()];
    return ::bind(fd, reinterpret_cast<const sockaddr*>(&src.addr), src.len) == 0;
  }

  void adopt_first(uint32_t s) {
    Slot& slot = slots_[s];
    Fd fd = std::move(run_.firsts[slot.global]);
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
    if (watch(s, fd.get())) slot.fd = std::move(fd);
    make_idle(s);
  }

  void connect_failed(uint32_t s, int err) {
    Slot& slot = slots_[s];
    if (err == EADDRNOTAVAIL) ++r_.out_of_ports;
    if (err == EMFILE || err == ENFILE) ++r_.out_of_fds;
    const bool starved = err == EADDRNOTAVAIL || err == EMFILE || err == ENFILE;
    if (slot.count == 0) {  // a connection opened ahead of its first request
      if (slot.phase == Phase::connecting) --pending_opens_;
      close(slot);
      make_idle(s);
      return;
    }
    abort_all(s, classify_connect(err), starved);
  }

  void on_connected(uint32_t s) {
    Slot& slot = slots_[s];
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(slot.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return connect_failed(s, err);
    if (slot.count == 0) {
      --pending_opens_;
      make_idle(s);  // it waits for its first request, and may be closed meanwhile
      return;
    }
    slot.phase = Phase::active;
    send_rest(s);
  }

  void send_rest(uint32_t s) {
    Slot& slot = slots_[s];
    while (slot.offset < slot.out.size()) {
      const ssize_t n = ::send(slot.fd.get(), slot.out.data() + slot.offset,
                               slot.out.size() - slot.offset, MSG_NOSIGNAL);
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
    slot.phase = Phase::active;
    if (slot.readable) {
      slot.readable = false;
      read_replies(s);
    }
  }

  // --- replies ---

  // `line` is a whole reply, without its newline: the oldest request's answer.
  void reply(uint32_t s, std::string_view line) {
    complete(s, classify_reply(without_cr(line), expect_), line.size() + 1);
  }

  // Reads what the server sent, a reply per line, until the socket is drained. Returns early
  // when a reply ended the connection's requests and closed it (one-shot).
  void read_replies(uint32_t s) {
    Slot& slot = slots_[s];
    const uint32_t gen = slot.conn_gen;
    for (;;) {
      const ssize_t n = ::recv(slot.fd.get(), buf_.data(), buf_.size(), 0);
      if (n > 0) {
        slot.got_bytes = true;
        if (!take_lines(s, static_cast<std::size_t>(n))) return;
        if (slot.conn_gen != gen || !slot.fd) return;
        if (slot.in.size() > cfg_.max_reply) return abort_all(s, Failure::reply_too_long);
        continue;
      }
      if (n == 0) return on_end_of_input(s);
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      return fail(s, io_failure(errno));
    }
  }

  // The `got` bytes just read: each newline answers the oldest request. False when the
  // connection was closed by what they held.
  bool take_lines(uint32_t s, std::size_t got) {
    Slot& slot = slots_[s];
    const uint32_t gen = slot.conn_gen;
    const char* at = buf_.data();
    const char* end = at + got;
    while (at < end) {
      const auto* nl = static_cast<const char*>(std::memchr(at, '\n', end - at));
      if (nl == nullptr || slot.count == 0) {
        slot.in.append(at, end - at);  // a partial reply, or bytes nobody asked for
        return true;
      }
      if (slot.in.empty()) {
        reply(s, {at, static_cast<std::size_t>(nl - at)});
      } else {
        slot.in.append(at, nl - at);
        const std::string line = std::move(slot.in);
        slot.in.clear();
        reply(s, line);
      }
      at = nl + 1;
      if (slot.conn_gen != gen || !slot.fd) return false;
    }
    return true;
  }

  void on_end_of_input(uint32_t s) {
    Slot& slot = slots_[s];
    if (slot.count == 0 || slot.in.empty()) return fail(s, Failure::reset);
    // A reply ended by the close rather than a newline: a one-shot server.
    const std::string line = std::move(slot.in);
    slot.in.clear();
    slot.peer_closed = true;
    reply(s, line);
    if (slot.count > 0) abort_all(s, Failure::reset);
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
  // sends its requests once more on a new connection, which a load balancer or a restarted
  // server takes.
  void fail(uint32_t s, Failure f) {
    Slot& slot = slots_[s];
    if (f == Failure::reset && slot.count > 0 && slot.reused && !slot.got_bytes && !slot.retried) {
      ++r_.reconnects;
      slot.retried = true;
      slot.offset = slot.acked;
      close(slot);
      slot.phase = Phase::idle;
      open(s, Clock::now());
      return;
    }
    abort_all(s, f);
  }

  // The oldest request got its answer (or failed alone): `bytes` of reply.
  void complete(uint32_t s, Failure f, std::size_t bytes) {
    Slot& slot = slots_[s];
    Pending& p = slot.front();
    record(f, p, bytes, slot.target);
    slot.acked += p.bytes;
    slot.head = (slot.head + 1) % static_cast<uint32_t>(slot.ring.size());
    --slot.count;
    --in_flight_;
    slot.retried = false;
    compact(slot);
    if (slot.count > 0) {
      slot.deadline = slot.front().sent + cfg_.timeout;
    } else {
      slot.deadline = Clock::time_point::max();
    }
    // The server's FIN came with (or before) the reply: edge-triggered, it will not be
    // reported again, and a proxy that half-closed would take the next request and never
    // answer it. The connection ends here; the next request opens a new one.
    const bool closed = f != Failure::none || !cfg_.keepalive || slot.peer_closed;
    if (slot.peer_closed && cfg_.keepalive && f == Failure::none) slot.reopen = true;
    if (closed && slot.count == 0) {
      close(slot);
      make_idle(s);
      return;
    }
    if (slot.count == 0) {
      slot.phase = Phase::idle;
      slot.reused = true;
    }
    offer(s);
  }

  // Every request in flight on slot `s` fails with `f`, and its connection is closed.
  void abort_all(uint32_t s, Failure f, bool starved = false) {
    Slot& slot = slots_[s];
    while (slot.count > 0) {
      record(f, slot.front(), 0, slot.target);
      slot.head = (slot.head + 1) % static_cast<uint32_t>(slot.ring.size());
      --slot.count;
      --in_flight_;
    }
    close(slot);
    slot.deadline = Clock::time_point::max();
    if (starved) {
      // A failing connect in a tight loop would only burn the ports or descriptors it lacks.
      slot.phase = Phase::delayed;
      delayed_.emplace_back(Clock::now() + kRetryAfter, s);
      return;
    }
    make_idle(s);
  }

  void record(Failure f, const Pending& p, std::size_t reply_bytes, uint16_t target) {
    const auto done = Clock::now();
    // --warmup: what completes before the measured window opens counts nowhere.
    if (done < run_.measured_from) return;
    ++r_.requests;
    r_.last_done = done;
    r_.bytes_sent += p.bytes;
    r_.bytes_received += reply_bytes;
    run_.done.fetch_add(1, std::memory_order_relaxed);
    if (window_ != nullptr) {
      std::lock_guard lock(window_->mu);
      if (f == Failure::none) window_->latency.record(micros(done - p.t0));
      ++(f == Failure::none ? window_->ok : window_->failed);
    }
    TargetCounts& t = r_.targets[target];
    ++t.requests;
    if (f != Failure::none) {
      ++r_.failures[static_cast<std::size_t>(f)];
      return;
    }
    ++t.ok;
    ++r_.ok;
    r_.latency.record(micros(done - p.t0));
    if (r_.latency_uncorrected) r_.latency_uncorrected->record(micros(done - p.sent));
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
      case Phase::active:
        if (out && slot.offset < slot.out.size()) send_rest(s);
        // Sending may have failed and closed the connection, or reopened it.
        if (in && slot.fd && slot.phase == Phase::active &&
            slot.conn_gen == static_cast<uint32_t>(ev.data.u64 >> 32)) {
          read_replies(s);
        }
        break;
      case Phase::idle:
        if (in) on_idle_input(s);
        break;
      default: break;
    }
  }

  // The slot can take a request: into the queue of those offered, once.
  void offer(uint32_t s) {
    Slot& slot = slots_[s];
    if (slot.offered || !has_room(slot) || slot.phase == Phase::unstarted) return;
    if (slot.count > 0 && !cfg_.keepalive) return;
    slot.offered = true;
    offered_.push_back(s);
  }

  void make_idle(uint32_t s) {
    slots_[s].phase = Phase::idle;
    offer(s);
  }

  // Drops answered requests from the front of the output once they are most of it, so a
  // pipelined connection that is never empty does not grow its buffer.
  static void compact(Slot& slot) {
    if (slot.acked == slot.out.size()) {
      slot.out.clear();
      slot.offset = slot.acked = 0;
    } else if (slot.acked > kKeepInput && slot.acked * 2 > slot.out.size()) {
      slot.out.erase(0, slot.acked);
      slot.offset -= slot.acked;
      slot.acked = 0;
    }
  }

  static void close(Slot& slot) {
    slot.fd.reset();
    ++slot.conn_gen;
    slot.readable = false;
    slot.peer_closed = false;
    if (slot.count == 0) {
      slot.out.clear();
      slot.offset = slot.acked = 0;
    }
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
  uint64_t rng_;
  Fd epoll_;
  std::vector<Slot> slots_;
  std::deque<uint32_t> offered_;                                // FIFO: every connection used
  std::deque<std::pair<Clock::time_point, uint32_t>> delayed_;  // FIFO: one fixed delay
  std::size_t next_start_ = 0;  // slots before this one have started (--ramp-up)
  uint64_t next_k_ = 0;         // --rate: this loop's next ticket, as k in Schedule::ticket_of
  uint64_t closed_k_ = 0;       // closed loop with --duration: the same, for {seq}
  uint64_t sent_count_ = 0;
  std::size_t in_flight_ = 0;      // requests in flight on this loop's connections
  std::size_t pending_opens_ = 0;  // connections opened ahead of their first request
  Clock::time_point next_scan_{};
  Clock::duration early_ = kSpinWindow;  // how early a sleep before a send ends
  Clock::duration min_early_ = kSpinWindow;
  Clock::duration max_early_ = kMaxSpin;
  bool exhausted_ = false;
};

}  // namespace

void run_loop(RunState& run, unsigned index, LoadResult& r, Window* window) {
  Loop(run, index, r, window).run();
}

}  // namespace tcpd
