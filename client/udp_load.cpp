#include "udp_load.hpp"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "cpu_time.hpp"
#include "fd.hpp"
#include "schedule.hpp"
#include "udp_payload.hpp"
#include "udp_single.hpp"

namespace tcpd {
namespace {

constexpr std::size_t kRecvBatch = 16;
constexpr std::size_t kControl = 64;
// Sends one loop makes before it reads again when it is behind its schedule, so that catching
// up does not leave the replies to overflow its sockets.
constexpr uint64_t kSendBurst = 64;
// The largest UDP payload: no reply slot needs more.
constexpr std::size_t kMaxDatagram = 65507;
// Closer than this to a send's due time, the loop spins instead of sleeping: a sleep's wake-up
// costs more than that, and would make the send late.
constexpr auto kSpinWindow = std::chrono::microseconds(50);
// How often a waiting loop looks at the stop flag.
constexpr auto kStopCheck = std::chrono::milliseconds(50);

int64_t ns_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

uint64_t micros_between(int64_t from_ns, int64_t to_ns) {
  return to_ns > from_ns ? static_cast<uint64_t>(to_ns - from_ns) / 1000 : 0;
}

// One connected UDP socket and what tcpc knows of its datagrams.
struct Flow {
  Fd fd;
  uint32_t id = 0;
  uint64_t next_seq = 0;
  SeqWindow window;
  // Closed loop: the datagram waiting for its reply.
  bool waiting = false;
  uint64_t waiting_seq = 0;
  int64_t waiting_sent_ns = 0;
  // RFC 3550 interarrival jitter of the round trip (µs).
  bool has_transit = false;
  double last_transit_us = 0;
  double jitter_us = 0;
  uint32_t kernel_drops = 0;
};

struct Shared {
  const ClientConfig& cfg;
  const Target& target;
  Schedule schedule;
  Clock::time_point sends_end = Clock::time_point::max();  // --duration
  const std::atomic<bool>* stop = nullptr;
  unsigned threads = 1;
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> received{0};

  [[nodiscard]] bool stopped() const { return stop != nullptr && stop->load(); }
};

class UdpLoop {
 public:
  UdpLoop(Shared& run, unsigned index);
  void run();
  UdpLoadResult result;

 private:
  void open_flows();
  [[nodiscard]] bool sends_done(Clock::time_point now) const;
  // Sends what is due; returns when the next send is due (max: nothing left to send now).
  Clock::time_point send_due(Clock::time_point now);
  Clock::time_point send_due_open(Clock::time_point now);
  void send_burst(std::size_t n, Clock::time_point now);
  void send(Flow& f, Clock::time_point due, Clock::time_point now);
  void receive(Flow& f);
  void reply(Flow& f, std::string_view data, int64_t now_ns);
  void expire(Clock::time_point now);
  void wait(Clock::time_point until);
  [[nodiscard]] bool all_answered() const { return result.received >= result.sent; }
  [[nodiscard]] std::size_t slot() const { return std::min(run_.cfg.max_reply, kMaxDatagram) + 1; }

 public:
  // The last send or reply: the end of this loop's share of the measured window.
  Clock::time_point last_event{};

 private:
  Shared& run_;
  unsigned index_;
  bool open_loop_;
  std::vector<Flow> flows_;
  Fd epoll_;
  std::string datagram_;
  uint64_t quota_ = UINT64_MAX;  // closed loop with --count: this thread's share
  uint64_t tickets_ = 0;         // open loop: this thread's tickets taken
  // Closed loop: when each waiting datagram times out, in send order (so in deadline order).
  struct Timeout {
    Clock::time_point at;
    std::size_t flow;
    uint64_t seq;
  };
  std::deque<Timeout> timeouts_;
  std::vector<char> bytes_;
  std::vector<char> control_;
  // A burst's datagrams (padding written once), and their due times.
  std::vector<char> burst_;
  std::array<iovec, kSendBurst> iovs_{};
  std::array<mmsghdr, kSendBurst> msgs_{};
  std::array<Clock::time_point, kSendBurst> dues_{};
};

UdpLoop::UdpLoop(Shared& run, unsigned index)
    : run_(run), index_(index), open_loop_(run.cfg.rate > 0) {
  const std::size_t size = udp_datagram_size(run.cfg);
  datagram_.resize(size);
  for (std::size_t i = 0; i < size; ++i) datagram_[i] = static_cast<char>('a' + i % 26);
  burst_.resize(kSendBurst * size);
  for (std::size_t k = 0; k < kSendBurst; ++k) {
    std::memcpy(burst_.data() + k * size, datagram_.data(), size);
  }
  bytes_.resize(kRecvBatch * slot());
  control_.resize(kRecvBatch * kControl);
  if (!open_loop_ && !run.cfg.duration_s) quota_ = share_of(index, run.threads, run.cfg.count);
  open_flows();
}

void UdpLoop::open_flows() {
  epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  const uint64_t n = share_of(index_, run_.threads, run_.cfg.concurrency);
  flows_.resize(n);
  for (uint64_t k = 0; k < n; ++k) {
    Flow& f = flows_[k];
    f.id = static_cast<uint32_t>(index_ + k * run_.threads);
    f.fd = Fd(::socket(run_.target.addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!f.fd) throw std::system_error(errno, std::generic_category(), "UDP socket");
    int one = 1;
    ::setsockopt(f.fd.get(), SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    if (run_.cfg.rcvbuf > 0) {
      int b = static_cast<int>(run_.cfg.rcvbuf);
      ::setsockopt(f.fd.get(), SOL_SOCKET, SO_RCVBUF, &b, sizeof b);
    }
    // Connected: replies from anyone but the server are not delivered, and an ICMP port
    // unreachable comes back as ECONNREFUSED.
    if (::connect(f.fd.get(), reinterpret_cast<const sockaddr*>(&run_.target.addr),
                  run_.target.len) != 0) {
      throw std::system_error(errno, std::generic_category(), "connect UDP socket");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = k;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, f.fd.get(), &ev);
  }
}

bool UdpLoop::sends_done(Clock::time_point now) const {
  if (run_.stopped() || now >= run_.sends_end) return true;
  if (open_loop_) {
    return !run_.schedule.scheduled(Schedule::ticket_of(index_, run_.threads, tickets_));
  }
  return result.sent + result.send_errors >= quota_;
}

void UdpLoop::send(Flow& f, Clock::time_point due, Clock::time_point now) {
  UdpStamp stamp{f.id, f.next_seq, ns_of(due), ns_of(now)};
  stamp.write(datagram_.data());
  if (::send(f.fd.get(), datagram_.data(), datagram_.size(), 0) < 0) {
    if (errno == ECONNREFUSED) {
      ++result.refused;
    } else {
      ++result.send_errors;
    }
    return;
  }
  ++f.next_seq;
  ++result.sent;
  last_event = now;
  run_.sent.fetch_add(1, std::memory_order_relaxed);
  if (!open_loop_) {
    f.waiting = true;
    f.waiting_seq = stamp.seq;
    f.waiting_sent_ns = stamp.sent_ns;
    timeouts_.push_back(
        {now + run_.cfg.timeout, static_cast<std::size_t>(&f - flows_.data()), stamp.seq});
  }
}

Clock::time_point UdpLoop::send_due(Clock::time_point now) {
  if (sends_done(now)) return Clock::time_point::max();
  if (open_loop_) return send_due_open(now);
  for (Flow& f : flows_) {
    if (f.waiting || sends_done(now)) continue;
    send(f, now, now);
  }
  return Clock::time_point::max();
}

// Open loop: what is due leaves now, a burst at most; when more than one is due (behind
// schedule, or a rate above what one wake-up per datagram sustains), each socket's share of them
// leaves in one sendmmsg().
Clock::time_point UdpLoop::send_due_open(Clock::time_point now) {
  std::size_t n = 0;
  Clock::time_point next = Clock::time_point::max();
  while (n < kSendBurst) {
    const uint64_t ticket = Schedule::ticket_of(index_, run_.threads, tickets_ + n);
    if (!run_.schedule.scheduled(ticket)) break;
    const Clock::time_point due = run_.schedule.due(ticket);
    if (due > now) {
      next = due;
      break;
    }
    dues_[n++] = due;
  }
  if (n == 1) send(flows_[tickets_ % flows_.size()], dues_[0], now);
  if (n > 1) send_burst(n, now);
  tickets_ += n;
  return n == kSendBurst ? now : next;  // a whole burst: read, then send on
}

void UdpLoop::send_burst(std::size_t n, Clock::time_point now) {
  const std::size_t flows = flows_.size();
  const std::size_t size = datagram_.size();
  for (std::size_t first = 0; first < std::min(n, flows); ++first) {
    Flow& f = flows_[(tickets_ + first) % flows];
    std::size_t m = 0;
    for (std::size_t j = first; j < n; j += flows, ++m) {
      char* d = burst_.data() + m * size;
      UdpStamp{f.id, f.next_seq + m, ns_of(dues_[j]), ns_of(now)}.write(d);
      iovs_[m] = {d, size};
      msgs_[m] = {};
      msgs_[m].msg_hdr.msg_iov = &iovs_[m];
      msgs_[m].msg_hdr.msg_iovlen = 1;
    }
    f.next_seq += m;  // a datagram that could not be sent leaves a gap, never a second use
    std::size_t done = 0;
    while (done < m) {
      const int r = ::sendmmsg(f.fd.get(), msgs_.data() + done, static_cast<unsigned>(m - done), 0);
      if (r > 0) {
        done += static_cast<std::size_t>(r);
        result.sent += static_cast<uint64_t>(r);
        run_.sent.fetch_add(static_cast<uint64_t>(r), std::memory_order_relaxed);
        continue;
      }
      if (errno == EINTR) continue;
      ++(errno == ECONNREFUSED ? result.refused : result.send_errors);
      ++done;  // sendmmsg() reports only the first failure: skip that one
    }
  }
  last_event = now;
}

void UdpLoop::reply(Flow& f, std::string_view data, int64_t now_ns) {
  auto stamp = UdpStamp::read(data);
  if (stamp && stamp->socket == f.id && stamp->seq < f.next_seq) {
    ++result.stamped;
    switch (f.window.arrive(stamp->seq)) {
      case SeqWindow::Arrival::duplicate: ++result.duplicated; return;
      case SeqWindow::Arrival::reordered:
      case SeqWindow::Arrival::too_old: ++result.reordered; break;
      case SeqWindow::Arrival::in_order: break;
    }
    ++result.received;
    result.latency.record(micros_between(stamp->due_ns, now_ns));
    if (result.latency_uncorrected) {
      result.latency_uncorrected->record(micros_between(stamp->sent_ns, now_ns));
    }
    const double transit = static_cast<double>(now_ns - stamp->sent_ns) / 1000.0;
    if (f.has_transit) f.jitter_us += (std::fabs(transit - f.last_transit_us) - f.jitter_us) / 16;
    f.has_transit = true;
    f.last_transit_us = transit;
    if (f.waiting && stamp->seq == f.waiting_seq) f.waiting = false;
  } else {
    // A greeting: it answers the oldest datagram not answered yet, which only closed loop knows.
    ++result.received;
    if (f.waiting) {
      result.latency.record(micros_between(f.waiting_sent_ns, now_ns));
      f.waiting = false;
    }
  }
  run_.received.fetch_add(1, std::memory_order_relaxed);
}

void UdpLoop::receive(Flow& f) {
  const std::size_t slot = this->slot();
  for (;;) {
    std::array<mmsghdr, kRecvBatch> msgs{};
    std::array<iovec, kRecvBatch> iovs{};
    for (std::size_t i = 0; i < kRecvBatch; ++i) {
      iovs[i] = {bytes_.data() + i * slot, slot};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = control_.data() + i * kControl;
      msgs[i].msg_hdr.msg_controllen = kControl;
    }
    const int n = ::recvmmsg(f.fd.get(), msgs.data(), kRecvBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) {
      if (n < 0 && errno == ECONNREFUSED) {
        ++result.refused;
        continue;
      }
      return;
    }
    last_event = Clock::now();
    const int64_t now = ns_of(last_event);
    for (int k = 0; k < n; ++k) {
      msghdr& h = msgs[static_cast<std::size_t>(k)].msg_hdr;
      for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
          std::memcpy(&f.kernel_drops, CMSG_DATA(c), sizeof f.kernel_drops);
        }
      }
      const auto len = std::min<std::size_t>(msgs[static_cast<std::size_t>(k)].msg_len, slot);
      reply(f, {bytes_.data() + static_cast<std::size_t>(k) * slot, len}, now);
    }
    if (static_cast<std::size_t>(n) < kRecvBatch) return;
  }
}

// Closed loop: a datagram not answered in --timeout-ms is given up on; its socket sends the
// next. (A late reply still counts as received.)
void UdpLoop::expire(Clock::time_point now) {
  while (!timeouts_.empty() && timeouts_.front().at <= now) {
    const Timeout t = timeouts_.front();
    timeouts_.pop_front();
    Flow& f = flows_[t.flow];
    if (f.waiting && f.waiting_seq == t.seq) f.waiting = false;
  }
}

void UdpLoop::wait(Clock::time_point until) {
  const auto now = Clock::now();
  until = std::min(until, now + kStopCheck);
  if (!timeouts_.empty()) until = std::min(until, timeouts_.front().at);
  const auto left = until - now;
  timespec ts{};
  if (left > kSpinWindow) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    ts.tv_sec = ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
  }
  std::array<epoll_event, 64> events{};
  const int n = ::epoll_pwait2(epoll_.get(), events.data(), events.size(), &ts, nullptr);
  for (int i = 0; i < n; ++i) receive(flows_[events[static_cast<std::size_t>(i)].data.u64]);
}

void UdpLoop::run() {
  if (open_loop_) result.latency_uncorrected.emplace();
  Clock::time_point last_send = Clock::now();
  for (;;) {
    auto now = Clock::now();
    expire(now);
    const auto next = send_due(now);
    if (!sends_done(now)) {
      last_send = now;
      wait(next);
      continue;
    }
    if (all_answered() || run_.stopped() || now >= last_send + run_.cfg.timeout) break;
    wait(last_send + run_.cfg.timeout);
  }
  double jitter = 0;
  uint64_t with = 0;
  for (const Flow& f : flows_) {
    result.client_drops += f.kernel_drops;
    if (f.has_transit) {
      jitter += f.jitter_us;
      ++with;
    }
  }
  result.jitter_us = with == 0 ? 0 : jitter / static_cast<double>(with);
  if (open_loop_ && run_.cfg.duration_s && !run_.stopped()) {
    uint64_t left = 0;
    while (run_.schedule.scheduled(Schedule::ticket_of(index_, run_.threads, tickets_ + left))) {
      ++left;
    }
    result.unsent = left;
  }
}

}  // namespace

void accumulate(UdpLoadResult& total, const UdpLoadResult& r, double jitter_weight) {
  total.sent += r.sent;
  total.received += r.received;
  total.duplicated += r.duplicated;
  total.reordered += r.reordered;
  total.send_errors += r.send_errors;
  total.refused += r.refused;
  total.stamped += r.stamped;
  total.client_drops += r.client_drops;
  total.unsent += r.unsent;
  total.jitter_us += r.jitter_us * jitter_weight;
  total.latency.merge(r.latency);
  if (r.latency_uncorrected) {
    if (!total.latency_uncorrected) total.latency_uncorrected.emplace();
    total.latency_uncorrected->merge(*r.latency_uncorrected);
  }
}

UdpLoadResult run_udp_load(const ClientConfig& cfg, const Target& target,
                           const std::function<void(const Progress&)>& on_tick,
                           const std::atomic<bool>* stop) {
  Shared run{cfg, target};
  run.stop = stop;
  run.threads = load_threads(cfg);
  run.schedule.start = Clock::now();
  run.schedule.rate = cfg.rate;
  if (cfg.duration_s) {
    run.sends_end = run.schedule.start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(*cfg.duration_s));
    run.schedule.end = run.sends_end;
    // A send due just before the end may leave just after it; the TCP loops allow the same.
    if (cfg.rate > 0) run.sends_end += std::chrono::milliseconds(10);
    if (cfg.rate > 0) run.schedule.max_tickets = static_cast<uint64_t>(*cfg.duration_s * cfg.rate);
  } else {
    run.schedule.max_tickets = cfg.count;
  }
  const auto wall_start = std::chrono::system_clock::now();
  std::vector<std::unique_ptr<UdpLoop>> loops;
  for (unsigned i = 0; i < run.threads; ++i) loops.push_back(std::make_unique<UdpLoop>(run, i));
  std::vector<std::thread> threads;
  std::atomic<unsigned> running{run.threads};
  for (auto& l : loops) {
    threads.emplace_back([&l, &running] {
      l->run();
      running.fetch_sub(1);
    });
  }
  auto next_tick = run.schedule.start + std::chrono::seconds(1);
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (Clock::now() < next_tick) continue;
    next_tick += std::chrono::seconds(1);
    const double s = std::chrono::duration<double>(Clock::now() - run.schedule.start).count();
    on_tick({run.sent.load(), run.received.load(), s});
  }
  for (auto& t : threads) t.join();
  Clock::time_point last = run.schedule.start;
  for (auto& l : loops) last = std::max(last, l->last_event);
  UdpLoadResult total;
  double weights = 0;
  for (auto& l : loops) {
    const double w = static_cast<double>(l->result.received);
    accumulate(total, l->result, w);
    weights += w;
  }
  if (weights > 0) total.jitter_us /= weights;
  total.threads = run.threads;
  total.started_at = wall_start;
  total.client_cpu_s = process_cpu_seconds();
  rusage ru{};
  if (::getrusage(RUSAGE_SELF, &ru) == 0) total.client_max_rss_kib = ru.ru_maxrss;
  // The window ends with the last send or reply, not the wait for replies that never came.
  total.seconds = std::chrono::duration<double>(last - run.schedule.start).count();
  return total;
}

}  // namespace tcpd
