// The open-loop schedule tcpc's event loops share without a queue: ticket i is due at
// start + i / rate, and loop t of T owns tickets t, t + T, ...
#include "schedule.hpp"

#include <gtest/gtest.h>

#include <set>

using tcpd::Clock;
using tcpd::Schedule;

namespace {

// Every ticket the loops of a run would send, by walking each loop's share as the loop does.
std::multiset<uint64_t> all_tickets(const Schedule& s, unsigned threads) {
  std::multiset<uint64_t> out;
  for (unsigned t = 0; t < threads; ++t) {
    for (uint64_t k = 0;; ++k) {
      const uint64_t ticket = Schedule::ticket_of(t, threads, k);
      if (!s.scheduled(ticket)) break;
      out.insert(ticket);
    }
  }
  return out;
}

}  // namespace

TEST(Schedule, DueTimesComeFromTheIndexNotFromAddedIntervals) {
  Schedule s;
  s.start = Clock::time_point{} + std::chrono::seconds(100);
  s.rate = 3;  // 333.33... ms apart: adding a rounded interval would drift
  EXPECT_EQ(s.due(0), s.start);
  EXPECT_EQ(s.due(3), s.start + std::chrono::seconds(1));
  EXPECT_EQ(s.due(300), s.start + std::chrono::seconds(100));
  EXPECT_EQ(s.due(1) - s.start, std::chrono::nanoseconds(333333333));
}

TEST(Schedule, DurationTimesRateIsExactlyThatManyRequestsWhateverTheThreadCount) {
  for (unsigned threads : {1U, 2U, 3U, 7U, 64U}) {
    Schedule s;
    s.start = Clock::now();
    s.rate = 300;
    s.max_tickets = 300;  // --duration 1 --rate 300
    s.end = s.start + std::chrono::seconds(1);
    const auto tickets = all_tickets(s, threads);
    EXPECT_EQ(tickets.size(), 300U) << threads;  // not 301
    EXPECT_EQ(std::set<uint64_t>(tickets.begin(), tickets.end()).size(), 300U) << "no repeats";
    EXPECT_EQ(*tickets.rbegin(), 299U);
  }
}

TEST(Schedule, CountWithRateSendsExactlyCount) {
  Schedule s;
  s.start = Clock::now();
  s.rate = 0.5;
  s.max_tickets = 1;  // --count 1 --rate 0.5
  EXPECT_EQ(all_tickets(s, 2).size(), 1U);
  s.max_tickets = 7;
  EXPECT_EQ(all_tickets(s, 4).size(), 7U);
}

TEST(Schedule, NothingIsDueAtOrAfterTheEnd) {
  Schedule s;
  s.start = Clock::now();
  s.rate = 10;
  s.end = s.start + std::chrono::milliseconds(250);  // tickets at 0, 100, 200 ms
  EXPECT_EQ(all_tickets(s, 2).size(), 3U);
  EXPECT_FALSE(s.scheduled(3));
}

TEST(Schedule, EachLoopsTicketsAreEvenlySpacedAtItsShareOfTheRate) {
  Schedule s;
  s.start = Clock::now();
  s.rate = 1000;
  const unsigned threads = 4;
  for (unsigned t = 0; t < threads; ++t) {
    const auto gap =
        s.due(Schedule::ticket_of(t, threads, 1)) - s.due(Schedule::ticket_of(t, threads, 0));
    EXPECT_EQ(gap, std::chrono::milliseconds(4)) << t;  // 250/s each
  }
}

TEST(Schedule, ConnectionsAreSharedOutEvenlyAndRampedLinearly) {
  uint64_t total = 0;
  for (unsigned t = 0; t < 3; ++t) total += tcpd::share_of(t, 3, 10000);
  EXPECT_EQ(total, 10000U);
  EXPECT_EQ(tcpd::share_of(0, 3, 10000), 3334U);
  EXPECT_EQ(tcpd::share_of(2, 3, 10000), 3333U);
  EXPECT_EQ(tcpd::share_of(1, 4, 1), 0U);
  EXPECT_EQ(tcpd::ramp_offset(2.0, 0, 100), Clock::duration::zero());
  EXPECT_EQ(tcpd::ramp_offset(2.0, 50, 100), std::chrono::seconds(1));
  EXPECT_EQ(tcpd::ramp_offset(0, 99, 100), Clock::duration::zero());
}
