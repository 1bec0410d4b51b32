// The eventfd helpers every waiting thread uses: a raise is never lost, and the pauses the
// acceptor and the metrics thread take when they must not spin (wait_readable() on their stop
// eventfd) end as soon as stop() raises it.
#include "eventfd.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "socket.hpp"

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;
using tcpd::IoStatus;

namespace {
IoStatus wait_raised(int fd, std::chrono::milliseconds ms) {
  return tcpd::wait_readable(fd, tcpd::Clock::now() + ms);
}
}  // namespace

TEST(EventFd, APauseRunsItsTimeWhenNothingRaisesIt) {
  tcpd::Fd ev = tcpd::make_eventfd();
  const auto t0 = Steady::now();
  EXPECT_EQ(wait_raised(ev.get(), 50ms), IoStatus::timed_out);
  EXPECT_GE(Steady::now() - t0, 45ms);  // poll() may round a little, never end early by much
}

TEST(EventFd, APauseEndsAtOnceWhenRaisedBeforeOrDuringIt) {
  tcpd::Fd ev = tcpd::make_eventfd();
  tcpd::raise_eventfd(ev.get());
  auto t0 = Steady::now();
  EXPECT_EQ(wait_raised(ev.get(), 60s), IoStatus::ok);
  EXPECT_LT(Steady::now() - t0, 10s);
  // The raise is left for the owner's own wait: a second pause sees it too.
  EXPECT_EQ(wait_raised(ev.get(), 0ms), IoStatus::ok);

  tcpd::Fd late = tcpd::make_eventfd();
  std::thread raiser([&] {
    std::this_thread::sleep_for(20ms);  // a raise that comes while the pause has begun
    tcpd::raise_eventfd(late.get());
  });
  t0 = Steady::now();
  EXPECT_EQ(wait_raised(late.get(), 60s), IoStatus::ok);
  EXPECT_LT(Steady::now() - t0, 10s);
  raiser.join();
}

TEST(EventFd, ARaiseAtTheCountersMaximumStaysReadable) {
  tcpd::Fd ev = tcpd::make_eventfd();
  const uint64_t near_max = 0xfffffffffffffffeULL;  // the largest value an eventfd holds
  ASSERT_EQ(::write(ev.get(), &near_max, sizeof near_max), static_cast<ssize_t>(sizeof near_max));
  tcpd::raise_eventfd(ev.get());  // EAGAIN: full; nothing lost, it is readable already
  EXPECT_EQ(wait_raised(ev.get(), 0ms), IoStatus::ok);
}
